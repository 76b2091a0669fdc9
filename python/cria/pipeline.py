"""``cria.pipeline("text-generation", model=...)``: transformers' shape, no framework."""
import os
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

from ._request import check_int
from .errors import ArgumentTypeError, InvalidArgumentError
from .model import Model, PathLike


class Tokenizer:
    """The tokenizer inside a .cria file, with the transformers names a
    pipeline call uses (``eos_token_id``, ``bos_token_id``, ``encode``,
    ``decode``, ``apply_chat_template``)."""

    def __init__(self, model: Model) -> None:
        self.model = model

    @property
    def eos_token_id(self) -> Optional[int]:
        ids = self.model.info.eos_ids
        return ids[0] if ids else None

    @property
    def bos_token_id(self) -> Optional[int]:
        b = self.model.info.bos_id
        return b if b >= 0 else None

    @property
    def vocab_size(self) -> int:
        return self.model.info.vocab_size

    def encode(self, text: str, add_special_tokens: bool = True) -> List[int]:
        return self.model.tokenize(text, add_bos=None if add_special_tokens else False)

    def __call__(self, text: str, add_special_tokens: bool = True) -> Dict[str, List[int]]:
        return {"input_ids": self.encode(text, add_special_tokens)}

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = False) -> str:
        if skip_special_tokens:
            raise InvalidArgumentError("skip_special_tokens is not supported by cria's tokenizer")
        return self.model.detokenize(ids)

    def apply_chat_template(self, messages: Sequence[Mapping[str, str]], tokenize: bool = True,
                            add_generation_prompt: bool = True) -> Union[str, List[int]]:
        if not add_generation_prompt:
            raise InvalidArgumentError("cria's chat templates always end with the assistant's header")
        text = self.model.chat_template(messages)
        return self.model.tokenize(text, add_bos=False) if tokenize else text


class AutoTokenizer:
    """``AutoTokenizer.from_pretrained(path)`` for a .cria file."""

    @staticmethod
    def from_pretrained(path: Union[PathLike, Model], **_ignored: Any) -> Tokenizer:
        return Tokenizer(path if isinstance(path, Model) else Model(path))


# Arguments transformers' text-generation pipeline takes that cria honours
# (pad_token_id is accepted and unused: cria never pads, each sequence has
# its own cache rows).
GENERATE_ARGS = ("max_length", "max_new_tokens", "do_sample", "top_k", "top_p", "temperature", "min_p",
                 "repetition_penalty", "num_return_sequences", "eos_token_id", "return_full_text", "seed",
                 "stop_strings", "pad_token_id")

Chat = Sequence[Mapping[str, str]]


class TextGenerationPipeline:
    """Callable like transformers' ``TextGenerationPipeline``.

    ``pipe(text, **kwargs)`` returns ``[{"generated_text": ...}]``, one dict
    per ``num_return_sequences``; a list of texts gives a list of such lists;
    a chat (a list of ``{"role", "content"}`` dicts) gives the conversation
    with the assistant's answer appended, as transformers does.
    """

    def __init__(self, model: Model, tokenizer: Tokenizer) -> None:
        self.model = model
        self.tokenizer = tokenizer

    def __call__(self, text_inputs: Union[str, Chat, Sequence[str], Sequence[Chat]],
                 **kwargs: Any) -> List[Any]:
        unknown = sorted(set(kwargs) - set(GENERATE_ARGS))
        if unknown:
            raise ArgumentTypeError(f"text-generation got an unexpected keyword argument {unknown[0]!r} "
                                    f"(cria takes {', '.join(GENERATE_ARGS)})")
        if isinstance(text_inputs, str) or _is_chat(text_inputs):
            return self._one(text_inputs, kwargs)
        if isinstance(text_inputs, Sequence) and text_inputs:
            return [self._one(t, kwargs) for t in text_inputs]
        raise ArgumentTypeError("text_inputs must be a str, a chat (list of role/content dicts) or a list of them")

    def _one(self, item: Any, kw: Dict[str, Any]) -> List[Dict[str, Any]]:
        chat = _is_chat(item)
        if not chat and not isinstance(item, str):
            raise ArgumentTypeError(f"each input must be a str or a chat, got {type(item).__name__}")
        n = check_int("num_return_sequences", kw.get("num_return_sequences", 1), 1, 64)
        max_new = kw.get("max_new_tokens")
        max_length = kw.get("max_length") if max_new is None else None  # max_new_tokens wins, as in transformers
        do_sample = kw.get("do_sample")
        if do_sample is False and n > 1:
            raise InvalidArgumentError("greedy decoding gives one sequence: num_return_sequences > 1 needs "
                                       "do_sample=True")
        full = kw.get("return_full_text", True)
        if not isinstance(full, bool):
            raise ArgumentTypeError("return_full_text must be a bool")
        req = self.model.request(
            None if chat else item, list(item) if chat else None,
            max_new_tokens=max_new if max_new is not None or max_length is not None else 256,
            max_length=max_length, do_sample=do_sample, temperature=kw.get("temperature"), top_k=kw.get("top_k"),
            top_p=kw.get("top_p"), min_p=kw.get("min_p"), repeat_penalty=kw.get("repetition_penalty"),
            seed=kw.get("seed"), stop=kw.get("stop_strings"), eos_token_id=kw.get("eos_token_id"),
            num_return_sequences=n)
        texts, _ = self.model.generate_sequences(req)
        if chat:
            return [{"generated_text": list(item) + [{"role": "assistant", "content": t}]} if full
                    else {"generated_text": t} for t in texts]
        return [{"generated_text": item + t if full else t} for t in texts]


def _is_chat(x: Any) -> bool:
    return (isinstance(x, Sequence) and not isinstance(x, str) and len(x) > 0
            and all(isinstance(m, Mapping) for m in x))


def pipeline(task: str, model: Union[PathLike, Model, None] = None, tokenizer: Optional[Tokenizer] = None, *,
             threads: Optional[int] = None, context_length: Optional[int] = None, device_map: Any = None,
             torch_dtype: Any = None, device: Any = None) -> TextGenerationPipeline:
    """``pipeline("text-generation", model="model.cria")``, like transformers.

    ``torch_dtype``, ``device_map`` and ``device`` are accepted so that code
    written for transformers runs unchanged, and have no effect: a .cria file
    fixes its weights' types, and cria places its work on the CPU itself.
    """
    if task != "text-generation":
        raise InvalidArgumentError(f"unknown task {task!r}: cria has 'text-generation'")
    if model is None:
        raise InvalidArgumentError("pipeline needs model= (a .cria file or a cria.Model)")
    if isinstance(model, Model):
        m = model
    elif isinstance(model, (str, os.PathLike)):
        if tokenizer is not None and os.fspath(model) == tokenizer.model.path and not tokenizer.model.closed:
            m = tokenizer.model  # one load for both, as the seed names the same checkpoint twice
        else:
            m = Model(model, threads=threads, context_length=context_length)
    else:
        raise ArgumentTypeError(f"model must be a path or a cria.Model, got {type(model).__name__}")
    if tokenizer is not None and not isinstance(tokenizer, Tokenizer):
        raise ArgumentTypeError("tokenizer must come from cria.AutoTokenizer.from_pretrained")
    return TextGenerationPipeline(m, tokenizer or Tokenizer(m))
