"""``cria.Model``: a loaded .cria file, its tokenizer, and streaming generation."""
import ctypes
import os
import queue
import threading
import weakref
from ctypes import c_int32, c_size_t, c_void_p
from dataclasses import dataclass
from typing import Any, Iterator, List, Optional, Sequence, Tuple, Union

from . import _lib
from ._request import Messages, Request, check_int, check_str, encode, token_ids
from .errors import ArgumentTypeError, InvalidArgumentError, ModelClosedError, error_for_status

PathLike = Union[str, "os.PathLike[str]"]
StopArg = Union[str, Sequence[str], None]
EosArg = Union[int, Sequence[int], None]


@dataclass(frozen=True)
class ModelInfo:
    """What a .cria file holds (``cria inspect`` prints the same)."""

    architecture: str       # "llama" | "falcon"
    hf_architecture: str    # e.g. "LlamaForCausalLM"
    chat_template: str      # "llama3" | "falcon" | "none"
    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    context_length: int
    bos_id: int
    add_bos: bool
    eos_ids: Tuple[int, ...]
    file_size: int
    parameters: int
    bits_per_weight: float


@dataclass(frozen=True)
class GenerationResult:
    """Statistics of one finished generation."""

    prompt_tokens: int
    reused_prompt_tokens: int
    generated_tokens: int
    prefill_seconds: float
    decode_seconds: float
    time_to_first_token: float
    stop_reason: str  # "eos" | "max_tokens" | "stop_string" | "context_full" | "cancelled" | "stopped"


_IDLE_SESSIONS = 2  # kept for reuse: a continued chat reuses its KV prefix


class Model:
    """A model loaded from a .cria file.

    ``threads`` (default: all cores) and ``context_length`` (default: the
    model's, at most 4096) apply to every generation. ``backend`` ("auto",
    "cpu", "xnnpack", "vulkan") says where the linear layers run, and
    ``gpu_layers`` (with "vulkan") how many blocks go to the device;
    :attr:`placement` shows the result. ``kv`` is the KV cache type: "f16"
    (default), "q8" or "q4" (int8 / int4 in blocks of 32, about half / a
    third of the memory, for long contexts). ``weights`` says where the CPU
    reads the weights from: "auto" (default), "copy" (into memory in 2 MiB
    pages: the fastest decode) or "map" (in place from the file: the least
    memory). One model serves any
    number of threads at once: each generation runs in its own session. Use it
    as a context manager or call :meth:`close`; the C model is freed exactly
    once, after the last running generation ends.

    >>> with cria.Model("llama-mini.cria") as model:
    ...     for piece in model.stream("Once upon a time", max_new_tokens=32):
    ...         print(piece, end="")
    """

    def __init__(self, path: PathLike, threads: Optional[int] = None, context_length: Optional[int] = None,
                 backend: str = "auto", gpu_layers: Optional[int] = None, kv: str = "f16",
                 weights: str = "auto") -> None:
        self._handle: Optional[int] = None
        self._lock = threading.Lock()
        self._idle: List[int] = []
        self._active = 0
        self._closed = True
        if not isinstance(path, (str, os.PathLike)):
            raise ArgumentTypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
        self.path = os.fspath(path)
        self.threads = None if threads is None else check_int("threads", threads, 1, 256)
        self.context_length = None if context_length is None else check_int("context_length", context_length, 1)
        # Where the linear layers run (auto | cpu | xnnpack | vulkan); the C
        # API checks the name against what this build and machine have.
        self.backend = check_str("backend", backend)
        self.kv = check_str("kv", kv)
        if self.kv not in ("f16", "q8", "q4", "f32"):
            raise InvalidArgumentError(f"kv must be one of f16, q8, q4, f32; got {self.kv!r}")
        lib = _lib.lib()
        handle = c_void_p()
        # With backend="vulkan": only the first gpu_layers blocks on the device.
        self.gpu_layers = None if gpu_layers is None else check_int("gpu_layers", gpu_layers, 0)
        self.weights = check_str("weights", weights)
        params = _lib.ModelParams(encode("backend", self.backend), -1 if gpu_layers is None else self.gpu_layers,
                                  encode("weights", self.weights))
        _lib.check(lib.cria_model_load(encode("path", self.path), ctypes.byref(params), ctypes.byref(handle)))
        self._handle = handle.value
        self._closed = False
        self.info = self._read_info()

    # ---- lifetime ---------------------------------------------------------

    def close(self) -> None:
        """Frees the model (at once, or when the last running generation ends)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            idle, self._idle = self._idle, []
            free_now = self._active == 0
        lib = _lib.lib()
        for s in idle:
            lib.cria_session_free(s)
        if free_now:
            self._free_model()

    def _free_model(self) -> None:
        handle, self._handle = self._handle, None
        if handle:
            _lib.lib().cria_model_free(handle)

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> "Model":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_closed", True) is False:
            try:
                self.close()
            except Exception:  # noqa: BLE001 - at interpreter exit the modules may already be gone
                pass

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{self.info.architecture}, {self.info.parameters / 1e6:.1f}M parameters"
        return f"cria.Model({self.path!r}, {state})"

    def _live_handle(self) -> int:
        if self._closed or not self._handle:
            raise ModelClosedError(f"{self.path}: the model is closed")
        return self._handle

    def _acquire_session(self, n_seq: int) -> int:
        with self._lock:
            handle = self._live_handle()
            if n_seq == 1 and self._idle:
                self._active += 1
                return self._idle.pop()
            self._active += 1
        try:
            opt = _lib.SessionOptions()
            lib = _lib.lib()
            lib.cria_session_options_init(ctypes.byref(opt))
            opt.n_ctx = self.context_length or 0
            opt.threads = self.threads or 0
            opt.n_seq = n_seq
            opt.kv_type = self.kv.encode()
            session = c_void_p()
            _lib.check(lib.cria_session_create(handle, ctypes.byref(opt), ctypes.byref(session)))
            return session.value  # type: ignore[return-value]
        except BaseException:
            self._release_session(None, n_seq)
            raise

    def _release_session(self, session: Optional[int], n_seq: int) -> None:
        with self._lock:
            self._active -= 1
            keep = session is not None and n_seq == 1 and not self._closed and len(self._idle) < _IDLE_SESSIONS
            if keep:
                self._idle.append(session)  # type: ignore[arg-type]
            free_model = self._closed and self._active == 0
        if session is not None and not keep:
            _lib.lib().cria_session_free(session)
        if free_model:
            self._free_model()

    # ---- tokens -----------------------------------------------------------

    def _read_info(self) -> ModelInfo:
        lib = _lib.lib()
        s = _lib.ModelInfoStruct()
        _lib.check(lib.cria_model_get_info(self._handle, ctypes.byref(s)))
        n = c_size_t()
        _lib.check(lib.cria_model_eos_ids(self._handle, None, 0, ctypes.byref(n)))
        eos = (c_int32 * max(n.value, 1))()
        _lib.check(lib.cria_model_eos_ids(self._handle, eos, n.value, ctypes.byref(n)))
        return ModelInfo(
            architecture=s.architecture.decode(), hf_architecture=s.hf_architecture.decode(),
            chat_template=s.chat_template.decode(), vocab_size=s.vocab_size, hidden_size=s.hidden_size,
            num_layers=s.num_layers, num_heads=s.num_heads, num_kv_heads=s.num_kv_heads,
            head_dim=s.head_dim, context_length=s.context_length, bos_id=s.bos_id, add_bos=bool(s.add_bos),
            eos_ids=tuple(eos[i] for i in range(n.value)), file_size=s.file_size, parameters=s.parameters,
            bits_per_weight=s.bits_per_weight)

    def tokenize(self, text: str, *, add_bos: Optional[bool] = None, special: bool = True) -> List[int]:
        """Token ids of ``text``; ``add_bos`` defaults to the model's habit
        (Llama 3 adds BOS, Falcon does not); ``special`` reads special-token
        text such as ``<|eot_id|>`` as that token."""
        data = encode("text", text)
        bos = self.info.add_bos if add_bos is None else add_bos
        lib = _lib.lib()
        handle = self._live_handle()
        n = c_size_t()
        cap = len(data) + 2
        while True:
            ids = (c_int32 * cap)()
            _lib.check(lib.cria_tokenize(handle, data, len(data), int(bool(bos)), int(bool(special)), ids, cap,
                                         ctypes.byref(n)))
            if n.value <= cap:
                return list(ids[: n.value])
            cap = n.value

    def detokenize(self, ids: Sequence[int]) -> str:
        """The text of ``ids`` (bytes that do not form UTF-8 become U+FFFD)."""
        values = token_ids("ids", ids)
        for i, v in enumerate(values):
            if v >= self.info.vocab_size:
                raise InvalidArgumentError(f"ids[{i}] = {v} is not below the vocabulary size {self.info.vocab_size}")
        arr = (c_int32 * max(len(values), 1))(*values)
        lib = _lib.lib()
        handle = self._live_handle()
        n = c_size_t()
        _lib.check(lib.cria_detokenize(handle, arr, len(values), None, 0, ctypes.byref(n)))
        buf = ctypes.create_string_buffer(max(n.value, 1))
        _lib.check(lib.cria_detokenize(handle, arr, len(values), buf, n.value, ctypes.byref(n)))
        return buf.raw[: n.value].decode("utf-8", "replace")

    @property
    def placement(self) -> str:
        """Which backend runs each op kind, one line per kind (what
        ``cria inspect --placement`` prints)."""
        lib = _lib.lib()
        handle = self._live_handle()
        n = c_size_t()
        _lib.check(lib.cria_model_placement(handle, None, 0, ctypes.byref(n)))
        buf = ctypes.create_string_buffer(n.value + 1)
        _lib.check(lib.cria_model_placement(handle, buf, n.value + 1, ctypes.byref(n)))
        return buf.raw[: n.value].decode("utf-8")

    def chat_template(self, messages: Messages) -> str:
        """The exact prompt text the model's chat template makes of
        ``messages`` (ending with the assistant's header)."""
        req = Request(self._live_handle())
        req.set_messages(messages)
        return self._render(req)

    def _render(self, req: Request) -> str:
        lib = _lib.lib()
        handle = self._live_handle()
        n = c_size_t()
        _lib.check(lib.cria_render_prompt(handle, ctypes.byref(req.params), None, 0, ctypes.byref(n)))
        buf = ctypes.create_string_buffer(n.value + 1)
        _lib.check(lib.cria_render_prompt(handle, ctypes.byref(req.params), buf, n.value + 1, ctypes.byref(n)))
        return buf.raw[: n.value].decode("utf-8", "replace")

    # ---- generation -------------------------------------------------------

    def request(self, prompt: Optional[str] = None, messages: Optional[Messages] = None, *,
                system: Optional[str] = None, chat: bool = False, max_new_tokens: Optional[int] = 256,
                max_length: Optional[int] = None, do_sample: Optional[bool] = None,
                temperature: Optional[float] = None, top_k: Optional[int] = None, top_p: Optional[float] = None,
                min_p: Optional[float] = None, repeat_penalty: Optional[float] = None, seed: Optional[int] = None,
                stop: StopArg = None, eos_token_id: EosArg = None, add_bos: Optional[bool] = None,
                truncate: bool = False, num_return_sequences: int = 1) -> Request:
        """Checks the arguments of :meth:`stream` and builds the C request."""
        req = Request(self._live_handle())
        if (prompt is None) == (messages is None):
            raise InvalidArgumentError("give exactly one of prompt and messages")
        if messages is not None:
            req.set_messages(messages)
            if system is not None:
                raise InvalidArgumentError("system goes with prompt; put a system message into messages instead")
        else:
            req.set_prompt(prompt)  # type: ignore[arg-type]
            if not isinstance(chat, bool):
                raise ArgumentTypeError(f"chat must be a bool, got {type(chat).__name__}")
            req.params.use_chat_template = int(chat)
            if system is not None:
                if not chat:
                    raise InvalidArgumentError("system needs chat=True (or messages)")
                req.set_system(system)
        req.set_length(max_new_tokens, max_length)
        req.set_sampling(do_sample=do_sample, temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p,
                         repeat_penalty=repeat_penalty, seed=seed)
        req.set_stop(stop)
        req.set_eos(eos_token_id)
        if add_bos is not None:
            if not isinstance(add_bos, bool):
                raise ArgumentTypeError(f"add_bos must be a bool, got {type(add_bos).__name__}")
            req.params.add_bos = int(add_bos)
        req.params.truncate = int(bool(truncate))
        req.set_num_return_sequences(num_return_sequences)
        return req

    def stream(self, prompt: Optional[str] = None, messages: Optional[Messages] = None, *,
               system: Optional[str] = None, chat: bool = False, max_new_tokens: Optional[int] = 256,
               max_length: Optional[int] = None, do_sample: Optional[bool] = None,
               temperature: Optional[float] = None, top_k: Optional[int] = None, top_p: Optional[float] = None,
               min_p: Optional[float] = None, repeat_penalty: Optional[float] = None, seed: Optional[int] = None,
               stop: StopArg = None, eos_token_id: EosArg = None, add_bos: Optional[bool] = None,
               truncate: bool = False) -> "TextStream":
        """Generates a continuation and yields its text as it is made.

        Give ``prompt`` (plain completion; ``chat=True`` wraps it as one user
        turn in the model's chat template, with an optional ``system``
        message) or ``messages`` (a list of ``{"role", "content"}`` dicts,
        always templated). Sampling settings left at None keep the model's
        generation_config defaults; giving temperature, top_k, top_p or min_p
        turns sampling on, ``temperature=0`` or ``do_sample=False`` is greedy.
        ``seed`` makes sampling reproducible (default 0). ``stop`` strings end
        the text (and are not shown); ``eos_token_id`` replaces the model's
        end-of-sequence ids. ``max_new_tokens=-1`` runs until EOS or a full
        context; ``max_length`` counts the prompt too, like transformers.

        Pieces are never half a UTF-8 character. Leaving the loop early (or
        ``KeyboardInterrupt``) stops the generation within one token. The
        returned stream's ``result`` holds the statistics once it is done.
        """
        req = self.request(prompt, messages, system=system, chat=chat, max_new_tokens=max_new_tokens,
                           max_length=max_length, do_sample=do_sample, temperature=temperature, top_k=top_k,
                           top_p=top_p, min_p=min_p, repeat_penalty=repeat_penalty, seed=seed, stop=stop,
                           eos_token_id=eos_token_id, add_bos=add_bos, truncate=truncate)
        return TextStream(self, req)

    def generate(self, prompt: Optional[str] = None, messages: Optional[Messages] = None, **kwargs: Any) -> str:
        """Like :meth:`stream`, but returns the whole text at once."""
        return "".join(self.stream(prompt, messages, **kwargs))

    def generate_sequences(self, req: Request) -> Tuple[List[str], GenerationResult]:
        """Runs a request with ``num_return_sequences`` continuations; their texts."""
        run = _Run(self, req)
        pieces: List[List[str]] = [[] for _ in range(req.n_seq)]
        for seq, text in run:
            pieces[seq].append(text)
        texts = ["".join(p) for p in pieces]
        assert run.result is not None
        return texts, run.result


_DONE = object()
_AHEAD = 2  # pieces the engine may make before the reader has taken them


class _Run:
    """One cria_generate on a worker thread; pieces come back through a queue.

    The worker is needed because a Python generator cannot yield from inside a
    C callback. ctypes releases the GIL for the C call and takes it only for
    the callback, so other Python threads keep running. The consumer stopping
    (break, close, KeyboardInterrupt) sets `_stop`, which the callback returns
    to the engine at the next token, and cancels the session (which also
    interrupts a long prompt's prefill).
    """

    def __init__(self, model: Model, req: Request) -> None:
        self._model = model
        self._req = req
        self._queue: "queue.SimpleQueue[Any]" = queue.SimpleQueue()
        self._stop = threading.Event()
        self._room = threading.Semaphore(_AHEAD)
        self._lock = threading.Lock()
        self._session: Optional[int] = None
        self._thread: Optional[threading.Thread] = None
        self.result: Optional[GenerationResult] = None
        self._cb = _lib.TOKEN_CALLBACK(self._on_piece)

    def _on_piece(self, _user: Any, seq: int, text: Optional[int], length: int, _token: int) -> int:
        try:
            piece = ctypes.string_at(text, length) if length else b""
            # Back-pressure: the engine runs at most _AHEAD pieces ahead of
            # the reader, so a reader that stops wastes at most that much.
            # The wait polls the stop flag (a reader that stops while the
            # engine waits here must not leave this thread blocked).
            while not self._room.acquire(timeout=0.05):
                if self._stop.is_set():
                    return 1
            self._queue.put((seq, piece))
            return 1 if self._stop.is_set() else 0
        except BaseException:  # noqa: BLE001 - an exception must never cross into C
            self._stop.set()
            return 1

    def _work(self, session: int) -> None:
        res = _lib.GenerateResultStruct()
        status, message = 0, ""
        try:
            status = _lib.lib().cria_generate(session, ctypes.byref(self._req.params), self._cb, None,
                                              ctypes.byref(res))
            if status != _lib.CRIA_OK:
                message = _lib.last_error()  # per thread: read it here, on the calling thread
        finally:
            with self._lock:
                self._session = None
            self._model._release_session(session, self._req.n_seq)
            self.result = GenerationResult(res.prompt_tokens, res.reused_prompt_tokens, res.generated_tokens,
                                           res.prefill_seconds, res.decode_seconds, res.time_to_first_token,
                                           _lib.STOP_REASONS.get(res.stop_reason, "none"))
            self._queue.put((_DONE, status, message))

    def cancel(self) -> None:
        _LIVE.discard(self)
        self._stop.set()
        with self._lock:
            if self._session is not None:
                _lib.lib().cria_session_cancel(self._session)

    def __iter__(self) -> Iterator[Tuple[int, str]]:
        session = self._model._acquire_session(self._req.n_seq)
        self._session = session
        self._thread = threading.Thread(target=self._work, args=(session,), name="cria-generate")
        _LIVE.add(self)
        self._thread.start()
        try:
            while True:
                item = self._queue.get()
                if item[0] is _DONE:
                    _, status, message = item
                    if status != _lib.CRIA_OK and not (status == _lib.CRIA_ERR_CANCELLED and self._stop.is_set()):
                        raise error_for_status(status, message)
                    return
                self._room.release()
                yield item[0], item[1].decode("utf-8", "replace")
        finally:
            self.cancel()
            self._thread.join()


# Runs whose reader has not finished. A stream kept but never read to its end
# would hold its worker (waiting for room) and make the interpreter's exit
# wait for it: they are stopped just before exit joins threads.
_LIVE: "weakref.WeakSet[_Run]" = weakref.WeakSet()


def _stop_all() -> None:
    for run in list(_LIVE):
        run.cancel()


_register = getattr(threading, "_register_atexit", None)  # runs before threads are joined (3.9+)
if _register is not None:
    _register(_stop_all)


class TextStream:
    """The iterator :meth:`Model.stream` returns: text pieces of one continuation.

    ``result`` is a :class:`GenerationResult` once the stream is exhausted or
    closed; ``close()`` stops the generation (leaving a ``for`` loop does it too).
    """

    def __init__(self, model: Model, req: Request) -> None:
        self._run = _Run(model, req)
        self._it: Optional[Iterator[Tuple[int, str]]] = None

    def __iter__(self) -> "TextStream":
        return self

    def __next__(self) -> str:
        if self._it is None:
            self._it = iter(self._run)
        while True:
            seq, text = next(self._it)
            if seq == 0 and text:
                return text

    def close(self) -> None:
        if self._it is not None:
            self._it.close()  # type: ignore[attr-defined]

    def __enter__(self) -> "TextStream":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def result(self) -> Optional[GenerationResult]:
        return self._run.result

