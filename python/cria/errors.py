"""Exceptions raised by cria.

Every failure of the C library becomes a :class:`CriaError` subclass chosen by
its status code and carrying the library's one-line message. Subclasses also
derive from the built-in exception a Python user would catch for that kind of
problem: a bad argument is a ``ValueError``, a missing file a
``FileNotFoundError``, a wrong type a ``TypeError``.
"""
from typing import Dict, Optional, Type


class CriaError(Exception):
    """Base class of every error raised by cria.

    ``status`` is the C library's ``cria_status`` code (0 when the error was
    found on the Python side), ``status_name`` its name.
    """

    status: int = 0
    status_name: str = "error"

    def __init__(self, message: str, status: Optional[int] = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status


class InvalidArgumentError(CriaError, ValueError):
    """An argument's value is out of range or does not fit the model."""

    status, status_name = 1, "invalid argument"


class ArgumentTypeError(CriaError, TypeError):
    """An argument has the wrong type, or is not known."""

    status, status_name = 1, "invalid argument"


class ModelNotFoundError(CriaError, FileNotFoundError):
    """A file the call names does not exist."""

    status, status_name = 2, "not found"


class CriaIOError(CriaError, OSError):
    """Reading or writing a file failed."""

    status, status_name = 3, "i/o error"


class CorruptModelError(CriaError, ValueError):
    """A file is not a valid model (truncated, wrong format, inconsistent)."""

    status, status_name = 4, "corrupt"


class UnsupportedError(CriaError):
    """The model or this build of cria cannot do what was asked."""

    status, status_name = 5, "unsupported"


class OutOfRangeError(CriaError, ValueError):
    """A length limit was exceeded (for example a prompt longer than the context)."""

    status, status_name = 6, "out of range"


class CancelledError(CriaError):
    """The operation was stopped before it finished."""

    status, status_name = 7, "cancelled"


class CriaMemoryError(CriaError, MemoryError):
    """The library could not allocate memory."""

    status, status_name = 8, "out of memory"


class InternalError(CriaError):
    """A bug in cria: please report it with the message."""

    status, status_name = 9, "internal"


class LibraryNotFoundError(CriaError, ImportError):
    """``libcria.so`` could not be found or loaded."""


class ServerError(CriaError):
    """A ``cria serve`` (or other Replicate-compatible) server answered with an error.

    ``status_code`` is the HTTP status (0 for an ``error`` event in the stream).
    """

    def __init__(self, message: str, status_code: int = 0) -> None:
        super().__init__(message)
        self.status_code = status_code


class ModelClosedError(CriaError, ValueError):
    """The model was used after :meth:`cria.Model.close` (like a closed file)."""


_BY_STATUS: Dict[int, Type[CriaError]] = {
    1: InvalidArgumentError,
    2: ModelNotFoundError,
    3: CriaIOError,
    4: CorruptModelError,
    5: UnsupportedError,
    6: OutOfRangeError,
    7: CancelledError,
    8: CriaMemoryError,
    9: InternalError,
}


def error_for_status(status: int, message: str) -> CriaError:
    """The exception for a ``cria_status`` code and its message."""
    cls = _BY_STATUS.get(status, CriaError)
    return cls(message or f"cria error {status}", status)
