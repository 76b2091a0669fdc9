"""``cria.convert``: Hugging Face checkpoint directory or .gguf -> .cria."""
import ctypes
import os
from dataclasses import dataclass
from typing import Any, Callable, Optional, Union

from . import _lib
from ._request import check_int, encode
from .errors import ArgumentTypeError, InvalidArgumentError, error_for_status

PathLike = Union[str, "os.PathLike[str]"]


@dataclass(frozen=True)
class ConvertProgress:
    """Where a conversion is: tensor ``index`` of ``count`` and output bytes written."""

    tensor: str
    index: int
    count: int
    bytes_done: int
    bytes_total: int
    tensor_done: bool


QUANTS = ("f32", "f16", "q8", "q4", "keep")


def convert(src: PathLike, dst: PathLike, quant: Optional[str] = "q4", *, group: int = 32, threads: int = 2,
            search: bool = True, chat_template: Optional[str] = None,
            progress: Optional[Callable[[ConvertProgress], Any]] = None) -> str:
    """Converts ``src`` (a Hugging Face checkpoint directory or a .gguf file) to
    the .cria file ``dst`` and returns ``dst``.

    ``quant`` is ``f32``, ``f16``, ``q8``, ``q4`` or ``keep`` (None: q4 for
    Hugging Face, keep for GGUF). ``progress`` is called after every chunk; an
    exception raised in it (KeyboardInterrupt too) stops the conversion and is
    re-raised. On any failure nothing is left at ``dst``.
    """
    for name, value in (("src", src), ("dst", dst)):
        if not isinstance(value, (str, os.PathLike)):
            raise ArgumentTypeError(f"{name} must be a str or os.PathLike, got {type(value).__name__}")
    if quant is not None and quant not in QUANTS:
        raise InvalidArgumentError(f"quant must be one of {', '.join(QUANTS)}, got {quant!r}")
    if group not in (32, 128):
        raise InvalidArgumentError(f"group must be 32 or 128, got {group!r}")
    if progress is not None and not callable(progress):
        raise ArgumentTypeError("progress must be callable")
    opt = _lib.ConvertOptions()
    lib = _lib.lib()
    lib.cria_convert_options_init(ctypes.byref(opt))
    opt.quant = quant.encode() if quant else None
    opt.group = group
    opt.threads = check_int("threads", threads, 1, 256)
    opt.search = int(bool(search))
    opt.chat_template = encode("chat_template", chat_template) if chat_template else None
    raised: list = []

    # Always called, even without `progress`: the conversion runs on this
    # thread with the GIL released, and a callback is where Python gets to
    # run a pending SIGINT handler (so Ctrl-C stops a long conversion).
    def on_progress(_user: Any, p: Any) -> int:
        try:
            if progress is not None:
                c = p.contents
                progress(ConvertProgress(c.tensor.decode("utf-8", "replace") if c.tensor else "", c.index, c.count,
                                         c.bytes_done, c.bytes_total, bool(c.tensor_done)))
            return 0
        except BaseException as e:  # noqa: BLE001 - re-raised below, never across C
            raised.append(e)
            return 1

    cb = _lib.CONVERT_CALLBACK(on_progress)
    status = lib.cria_convert(encode("src", os.fspath(src)), encode("dst", os.fspath(dst)), ctypes.byref(opt), cb,
                              None)
    if raised:
        raise raised[0]
    if status != _lib.CRIA_OK:
        err = error_for_status(status, _lib.last_error())
        raise err
    return os.fspath(dst)



