"""User-facing errors: the CLI prints these as one clear line, without a traceback."""

from __future__ import annotations


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
