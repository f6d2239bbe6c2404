"""User-facing errors: the CLI prints these as one clear line, without a traceback."""

from __future__ import annotations

import errno
import os


class RiseError(Exception):
    """Base class of errors caused by the user's input or configuration."""


class ConfigError(RiseError):
    """A setting is missing, unknown or out of range; the message names it and its allowed values."""


class DataError(RiseError):
    """Input data is malformed; the message names the file and line (or dataset and row)."""


class IndexError_(RiseError):
    """An on-disk index is half-written, corrupt or incompatible with the requested build."""


def allowed(setting: str, value: object, choices: list[str] | tuple[str, ...]) -> ConfigError:
    """Build the standard 'unknown value' error for a setting."""
    return ConfigError(f"unknown {setting} {value!r}; allowed values: {', '.join(sorted(map(str, choices)))}")


#: What an environment error usually means, by errno.
_OS_HINTS = {
    errno.EFBIG: "the file size limit, ulimit -f, was reached",
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is exhausted",
    errno.EROFS: "the file system is read-only",
    errno.ENOTDIR: "a part of the path is a file, not a directory",
    errno.EEXIST: "a file is in the way of a directory",
}


def describe_os_error(exc: OSError, where: str = "") -> str:
    """One line for an environment error (disk full, unwritable or misplaced path): the path and the problem.

    Args:
        exc: The error.
        where: What to name when the error carries no path (e.g. ``"under paths.cache_dir=/c"``).
    """
    path = exc.filename if exc.filename is not None else where or "a file"
    what = exc.strerror or str(exc) or type(exc).__name__
    hint = _OS_HINTS.get(exc.errno or 0)
    return f"cannot create or write {path}: {what}" + (f" ({hint})" if hint and hint.lower() != what.lower() else "")


def environment_cause(exc: BaseException) -> OSError | None:
    """The environment error behind ``exc``: an ``OSError`` in its cause chain, or one that a library
    reported in its own error type (safetensors' ``SafetensorError``, torch's writer ``RuntimeError``) as
    the text of a full disk or a file size limit; None for anything else (a bug keeps its traceback)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno is not None:
            return seen
        seen = seen.__cause__ or seen.__context__
    text = str(exc)
    for code in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
        if os.strerror(code) in text:
            return OSError(code, os.strerror(code))
    return None
