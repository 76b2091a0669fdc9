"""ctypes declarations of ``runtime/include/cria/cria.h`` and the loader of libcria.

The structures below mirror the C header field for field; the test
``python/tests/test_convert_abi.py`` compiles a C program against the header and checks every
size and offset here against the compiler's, so a header change that is not
made here too fails CI instead of corrupting memory.
"""
import ctypes
import os
import threading
from ctypes import (POINTER, Structure, c_char_p, c_double, c_float, c_int, c_int32, c_size_t, c_uint64,
                    c_void_p)
from pathlib import Path
from typing import List, Optional

from .errors import LibraryNotFoundError, error_for_status

CRIA_OK = 0
CRIA_ERR_CANCELLED = 7

STOP_REASONS = {0: "none", 1: "eos", 2: "max_tokens", 3: "stop_string", 4: "context_full", 5: "cancelled",
                6: "stopped"}


class ModelInfoStruct(Structure):
    _fields_ = [
        ("architecture", c_char_p),
        ("hf_architecture", c_char_p),
        ("chat_template", c_char_p),
        ("vocab_size", c_int32),
        ("hidden_size", c_int32),
        ("num_layers", c_int32),
        ("num_heads", c_int32),
        ("num_kv_heads", c_int32),
        ("context_length", c_int32),
        ("bos_id", c_int32),
        ("add_bos", c_int32),
        ("file_size", c_uint64),
        ("parameters", c_uint64),
        ("bits_per_weight", c_double),
        ("head_dim", c_int32),
    ]


class ModelParams(Structure):
    _fields_ = [("backend", c_char_p), ("gpu_layers", c_int32), ("weights", c_char_p)]


class SessionOptions(Structure):
    _fields_ = [("n_ctx", c_int32), ("n_seq", c_int32), ("threads", c_int32), ("batch", c_int32), ("kv_type", c_char_p)]


class Message(Structure):
    _fields_ = [("role", c_char_p), ("content", c_char_p)]


class GenerateParams(Structure):
    _fields_ = [
        ("prompt_ids", POINTER(c_int32)),
        ("n_prompt_ids", c_size_t),
        ("prompts", POINTER(c_char_p)),
        ("n_prompts", c_size_t),
        ("prompt", c_char_p),
        ("messages", POINTER(Message)),
        ("n_messages", c_size_t),
        ("system", c_char_p),
        ("use_chat_template", c_int),
        ("add_bos", c_int),
        ("truncate", c_int),
        ("max_new_tokens", c_int32),
        ("max_length", c_int32),
        ("num_return_sequences", c_int32),
        ("do_sample", c_int),
        ("temperature", c_float),
        ("top_p", c_float),
        ("min_p", c_float),
        ("repetition_penalty", c_float),
        ("top_k", c_int32),
        ("seed", c_uint64),
        ("eos_ids", POINTER(c_int32)),
        ("n_eos_ids", c_size_t),
        ("stop_strings", POINTER(c_char_p)),
        ("n_stop_strings", c_size_t),
    ]


class GenerateResultStruct(Structure):
    _fields_ = [
        ("prompt_tokens", c_int32),
        ("reused_prompt_tokens", c_int32),
        ("generated_tokens", c_int32),
        ("prefill_seconds", c_double),
        ("decode_seconds", c_double),
        ("time_to_first_token", c_double),
        ("stop_reason", c_int),
    ]


class ConvertProgressStruct(Structure):
    _fields_ = [
        ("tensor", c_char_p),
        ("index", c_size_t),
        ("count", c_size_t),
        ("bytes_done", c_uint64),
        ("bytes_total", c_uint64),
        ("tensor_done", c_int),
    ]


class ConvertOptions(Structure):
    _fields_ = [
        ("quant", c_char_p),
        ("group", c_int32),
        ("threads", c_int32),
        ("search", c_int),
        ("chat_template", c_char_p),
    ]


# int (*)(void* user, int32_t seq, const char* text, size_t len, int32_t token); `text` is
# a void pointer so ctypes does not stop at a NUL byte: the length is what counts.
TOKEN_CALLBACK = ctypes.CFUNCTYPE(c_int, c_void_p, c_int32, c_void_p, c_size_t, c_int32)
CONVERT_CALLBACK = ctypes.CFUNCTYPE(c_int, c_void_p, POINTER(ConvertProgressStruct))

_PROTOTYPES = {
    "cria_last_error": (c_char_p, []),
    "cria_status_name": (c_char_p, [c_int]),
    "cria_version": (c_char_p, []),
    "cria_model_load": (c_int, [c_char_p, POINTER(ModelParams), POINTER(c_void_p)]),
    "cria_model_placement": (c_int, [c_void_p, c_void_p, c_size_t, POINTER(c_size_t)]),
    "cria_model_free": (None, [c_void_p]),
    "cria_model_get_info": (c_int, [c_void_p, POINTER(ModelInfoStruct)]),
    "cria_model_eos_ids": (c_int, [c_void_p, POINTER(c_int32), c_size_t, POINTER(c_size_t)]),
    "cria_tokenize": (c_int, [c_void_p, c_char_p, c_size_t, c_int, c_int, POINTER(c_int32), c_size_t,
                              POINTER(c_size_t)]),
    "cria_detokenize": (c_int, [c_void_p, POINTER(c_int32), c_size_t, c_void_p, c_size_t, POINTER(c_size_t)]),
    "cria_session_options_init": (None, [POINTER(SessionOptions)]),
    "cria_session_create": (c_int, [c_void_p, POINTER(SessionOptions), POINTER(c_void_p)]),
    "cria_session_free": (None, [c_void_p]),
    "cria_session_cancel": (None, [c_void_p]),
    "cria_generate_params_init": (None, [c_void_p, POINTER(GenerateParams)]),
    "cria_generate": (c_int, [c_void_p, POINTER(GenerateParams), TOKEN_CALLBACK, c_void_p,
                              POINTER(GenerateResultStruct)]),
    "cria_render_prompt": (c_int, [c_void_p, POINTER(GenerateParams), c_void_p, c_size_t, POINTER(c_size_t)]),
    "cria_convert_options_init": (None, [POINTER(ConvertOptions)]),
    "cria_convert": (c_int, [c_char_p, c_char_p, POINTER(ConvertOptions), CONVERT_CALLBACK, c_void_p]),
}

_lib: Optional[ctypes.CDLL] = None
_lock = threading.Lock()


def candidates() -> List[Path]:
    """Where libcria is looked for, in order (``CRIA_LIBRARY`` alone when set)."""
    env = os.environ.get("CRIA_LIBRARY")
    if env:
        return [Path(env)]
    here = Path(__file__).resolve().parent
    return [here / "libcria.so",                       # copied in by `pip install`
            here.parent.parent / "build" / "lib" / "libcria.so"]   # a source checkout's build


def lib() -> ctypes.CDLL:
    """The loaded library, loaded on first use (so ``import cria`` never fails)."""
    global _lib
    if _lib is not None:
        return _lib
    with _lock:
        if _lib is None:
            _lib = _load()
    return _lib


def _load() -> ctypes.CDLL:
    tried = []
    for path in candidates():
        if not path.exists():
            tried.append(str(path))
            continue
        try:
            handle = ctypes.CDLL(str(path))
        except OSError as e:
            raise LibraryNotFoundError(f"{path}: cannot load libcria: {e}") from None
        missing = [name for name in _PROTOTYPES if not hasattr(handle, name)]
        if missing:
            raise LibraryNotFoundError(f"{path}: this libcria is older than the Python package "
                                       f"(no {', '.join(missing)}); rebuild it")
        for name, (restype, argtypes) in _PROTOTYPES.items():
            fn = getattr(handle, name)
            fn.restype = restype
            fn.argtypes = argtypes
        return handle
    raise LibraryNotFoundError("libcria.so not found (looked at " + ", ".join(tried) +
                               "); build it (cmake --build build) or set CRIA_LIBRARY to its path")


def check(status: int) -> None:
    """Raises the error of a failed call; call it on the thread that made the call
    (the C library's message is per thread)."""
    if status != CRIA_OK:
        raise error_for_status(status, last_error())


def last_error() -> str:
    msg = lib().cria_last_error()
    return msg.decode("utf-8", "replace") if msg else ""


def version() -> str:
    return lib().cria_version().decode()
