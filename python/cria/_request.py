"""Turns Python arguments into a ``cria_generate_params`` and keeps the memory
it points into alive for as long as the request runs."""
import ctypes
from ctypes import POINTER, c_char_p, c_int32
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

from . import _lib
from .errors import ArgumentTypeError, InvalidArgumentError

Messages = Sequence[Mapping[str, str]]


def check_int(name: str, value: Any, lo: Optional[int] = None, hi: Optional[int] = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ArgumentTypeError(f"{name} must be an int, got {type(value).__name__}")
    if lo is not None and value < lo:
        raise InvalidArgumentError(f"{name} must be at least {lo}, got {value}")
    if hi is not None and value > hi:
        raise InvalidArgumentError(f"{name} must be at most {hi}, got {value}")
    return value


def check_float(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ArgumentTypeError(f"{name} must be a number, got {type(value).__name__}")
    if value != value:  # NaN
        raise InvalidArgumentError(f"{name} must not be NaN")
    return float(value)


def check_str(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ArgumentTypeError(f"{name} must be a str, got {type(value).__name__}")
    return value


def encode(name: str, value: Any) -> bytes:
    # The C API takes NUL-terminated strings: an embedded NUL would cut the
    # text short without a word, so it is refused.
    text = check_str(name, value)
    if "\0" in text:
        raise InvalidArgumentError(f"{name} contains a NUL character")
    return text.encode("utf-8", "surrogatepass")


def check_messages(messages: Any) -> List[Dict[str, str]]:
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence):
        raise ArgumentTypeError("messages must be a list of {'role': ..., 'content': ...} dicts")
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, Mapping) or "role" not in m or "content" not in m:
            raise ArgumentTypeError(f"messages[{i}] must be a dict with 'role' and 'content'")
        role = check_str(f"messages[{i}]['role']", m["role"])
        if role not in ("system", "user", "assistant"):
            raise InvalidArgumentError(f"messages[{i}]['role'] must be 'system', 'user' or 'assistant', got {role!r}")
        out.append({"role": role, "content": check_str(f"messages[{i}]['content']", m["content"])})
    if not out:
        raise InvalidArgumentError("messages is empty")
    return out


def token_ids(name: str, value: Union[int, Sequence[int]]) -> List[int]:
    ids = [value] if isinstance(value, int) and not isinstance(value, bool) else value
    if isinstance(ids, (str, bytes)) or not isinstance(ids, Sequence):
        raise ArgumentTypeError(f"{name} must be a token id or a list of token ids")
    return [check_int(f"{name}[{i}]", v, 0, 2**31 - 1) for i, v in enumerate(ids)]


class Request:
    """A ``cria_generate_params`` and everything its pointers point into."""

    def __init__(self, model_handle: int) -> None:
        self.params = _lib.GenerateParams()
        _lib.lib().cria_generate_params_init(model_handle, ctypes.byref(self.params))
        self._keep: List[Any] = []
        self.n_seq = 1

    def keep(self, obj: Any) -> Any:
        self._keep.append(obj)
        return obj

    def set_prompt(self, prompt: str) -> None:
        self.params.prompt = self.keep(encode("prompt", prompt))

    def set_system(self, system: str) -> None:
        self.params.system = self.keep(encode("system", system))

    def set_messages(self, messages: Any) -> None:
        msgs = check_messages(messages)
        arr = (_lib.Message * len(msgs))()
        for i, m in enumerate(msgs):
            arr[i].role = self.keep(encode(f"messages[{i}]['role']", m["role"]))
            arr[i].content = self.keep(encode(f"messages[{i}]['content']", m["content"]))
        self.params.messages = ctypes.cast(self.keep(arr), POINTER(_lib.Message))
        self.params.n_messages = len(msgs)

    def set_stop(self, stop: Union[str, Sequence[str], None]) -> None:
        if stop is None:
            return
        stops = [stop] if isinstance(stop, str) else stop
        if not isinstance(stops, Sequence):
            raise ArgumentTypeError("stop must be a str or a list of str")
        values = [encode(f"stop[{i}]", s) for i, s in enumerate(stops)]
        values = [v for v in values if v]
        if not values:
            return
        arr = (c_char_p * len(values))(*values)
        self.keep(values)
        self.params.stop_strings = ctypes.cast(self.keep(arr), POINTER(c_char_p))
        self.params.n_stop_strings = len(values)

    def set_eos(self, eos: Union[int, Sequence[int], None]) -> None:
        if eos is None:
            return
        ids = token_ids("eos_token_id", eos)
        if not ids:
            raise InvalidArgumentError("eos_token_id is an empty list")
        arr = (c_int32 * len(ids))(*ids)
        self.params.eos_ids = ctypes.cast(self.keep(arr), POINTER(c_int32))
        self.params.n_eos_ids = len(ids)

    def set_sampling(self, *, do_sample: Optional[bool], temperature: Optional[float], top_k: Optional[int],
                     top_p: Optional[float], min_p: Optional[float], repeat_penalty: Optional[float],
                     seed: Optional[int]) -> None:
        """Settings left at None keep the model's generation_config defaults;
        giving one of temperature / top_k / top_p / min_p turns sampling on
        (as ``cria run`` does) unless do_sample says otherwise, and a
        temperature of 0 means greedy."""
        p = self.params
        given = False
        if temperature is not None:
            p.temperature = check_float("temperature", temperature)
            given = True
        if top_k is not None:
            p.top_k = check_int("top_k", top_k, 0, 2**31 - 1)
            given = True
        if top_p is not None:
            p.top_p = check_float("top_p", top_p)
            given = True
        if min_p is not None:
            p.min_p = check_float("min_p", min_p)
            given = True
        if repeat_penalty is not None:
            p.repetition_penalty = check_float("repeat_penalty", repeat_penalty)
        if seed is not None:
            p.seed = check_int("seed", seed, 0, 2**64 - 1)
        if do_sample is not None:
            if not isinstance(do_sample, bool):
                raise ArgumentTypeError(f"do_sample must be a bool, got {type(do_sample).__name__}")
            p.do_sample = int(do_sample)
        elif given:
            p.do_sample = 1
        if temperature is not None and p.temperature == 0:
            p.do_sample = 0

    def set_length(self, max_new_tokens: Optional[int], max_length: Optional[int]) -> None:
        if max_new_tokens is not None:
            self.params.max_new_tokens = check_int("max_new_tokens", max_new_tokens, -1, 2**31 - 1)
            if max_new_tokens == 0:
                raise InvalidArgumentError("max_new_tokens must be at least 1 (or -1 for no limit)")
        if max_length is not None:
            self.params.max_length = check_int("max_length", max_length, 1, 2**31 - 1)
            if max_new_tokens is None:
                self.params.max_new_tokens = -1

    def set_num_return_sequences(self, n: int) -> None:
        self.n_seq = check_int("num_return_sequences", n, 1, 64)
        self.params.num_return_sequences = self.n_seq
