"""cria: run Llama 3 and Falcon models from .cria files, from Python.

    import cria

    for event in cria.stream("llama.cria", input={"prompt": "Tell me a fortune."}):
        print(str(event), end="")

    pipe = cria.pipeline("text-generation", model="falcon.cria")
    print(pipe("A wise man once said", max_length=64, do_sample=True, top_k=10)[0]["generated_text"])

    with cria.Model("llama.cria") as model:
        print(model.generate(messages=[{"role": "user", "content": "Hi"}], max_new_tokens=32))

A thin layer over libcria's C API through ctypes: no compiler, no
dependencies beyond the standard library. libcria.so is found next to this
package, at $CRIA_LIBRARY, or in a source checkout's build/lib.
"""
from ._lib import version as _version
from .convert import ConvertProgress, convert
from .errors import (ArgumentTypeError, CancelledError, CorruptModelError, CriaError, CriaIOError, CriaMemoryError,
                     InternalError, InvalidArgumentError, LibraryNotFoundError, ModelClosedError, ModelNotFoundError,
                     OutOfRangeError, ServerError, UnsupportedError)
from .model import GenerationResult, Model, ModelInfo, TextStream
from .pipeline import AutoTokenizer, TextGenerationPipeline, Tokenizer, pipeline
from .replicate import ServerSentEvent, stream

__version__ = "0.1.0"


def library_version() -> str:
    """The version of the loaded libcria."""
    return _version()


__all__ = [
    "ArgumentTypeError", "AutoTokenizer", "CancelledError", "ConvertProgress", "CorruptModelError", "CriaError",
    "CriaIOError", "CriaMemoryError", "GenerationResult", "InternalError", "InvalidArgumentError",
    "LibraryNotFoundError", "Model", "ModelClosedError", "ModelInfo", "ModelNotFoundError", "OutOfRangeError",
    "ServerError", "ServerSentEvent", "TextGenerationPipeline", "TextStream", "Tokenizer", "UnsupportedError",
    "convert", "library_version", "pipeline", "stream",
]
