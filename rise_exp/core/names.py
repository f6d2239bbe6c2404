"""Names that become paths: every setting-derived name is made one safe path component, and every path
built from one is checked to stay inside its root, so no setting (``task.title=../../x``, ``/abs/x``,
``a/b``) can write outside the cache or the run directory."""

from __future__ import annotations

import re
from pathlib import Path

from rise_exp.core.errors import ConfigError

#: Characters kept in a path component; every other run of characters becomes ``_``.
_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")
#: Longest component made (file systems allow 255 bytes; keys and suffixes are appended).
MAX_COMPONENT = 96


def safe_component(text: object, fallback: str = "data") -> str:
    """``text`` as one path component: separators and other characters become ``_``, leading and trailing
    ``._+-`` are dropped (no ``..``, no hidden names), at most :data:`MAX_COMPONENT` characters;
    ``fallback`` when nothing is left."""
    safe = _UNSAFE.sub("_", str(text)).strip("._+-")[:MAX_COMPONENT].rstrip("._+-")
    return safe or fallback


def contained(root: str | Path, name: str, what: str = "name") -> Path:
    """``root / name``, refused (ConfigError naming ``what``) unless it is a path strictly inside ``root``."""
    root = Path(root)
    path = root / name
    base = root.resolve()
    resolved = path.resolve() if "\0" not in name else base
    if resolved == base or base not in resolved.parents:
        raise ConfigError(f"{what} {name!r} would leave {root}; use a plain name (letters, digits and . _ + -)")
    return path
