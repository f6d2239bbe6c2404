"""Sealed cache entries: a manifest of content digests, written last, that a later run checks before it
trusts the entry.

A cache entry (a directory such as a finetune epoch or an embedded model, or a single file such as
STRIDE's operators) is *sealed* once every byte of it is written: :func:`seal` (or :func:`seal_file`)
hashes each file and writes ``SEALED.json`` (``<file>.sealed.json`` for a single file) atomically. A run
that would reuse the entry calls :func:`problem` (:func:`file_problem`): it re-hashes every file and says
what is wrong (no seal: an unfinished or older entry; a file missing, of another size or other bytes), or
None. So a deleted tokenizer, a truncated or noisy checkpoint, or weights replaced with their size and
timestamps restored are all caught before a number is computed from them.

Cost: a full sha256 of the entry the first time a process checks it (about 1-2 GB/s; the reads warm the
page cache for the load that follows). A process remembers what it verified under each file's
``(size, mtime, ctime, inode)`` stamp: ``ctime`` is set by the kernel on every write or ``touch``, so a
same-stamp replacement cannot hide behind that memory.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from rise_exp.core.files import save_json
from rise_exp.core.hashing import file_sha256

log = logging.getLogger(__name__)

#: The seal of a directory entry; ``<file>`` + :data:`FILE_SEAL_SUFFIX` for a single file.
SEAL = "SEALED.json"
FILE_SEAL_SUFFIX = ".sealed.json"
_SKIP_SUFFIXES = (".lock", ".tmp")
#: Files verified by this process: path -> (stamp, sha256).
_VERIFIED: dict[str, tuple[str, str]] = {}


def stamp(path: Path) -> str:
    """``size:mtime:ctime:inode`` of ``path``; ``ctime`` changes on every write and cannot be set back."""
    st = os.stat(path)
    return f"{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_ino}"


def _digest(path: Path) -> str:
    key, now = str(Path(path).resolve()), stamp(path)
    known = _VERIFIED.get(key)
    if known is not None and known[0] == now:
        return known[1]
    sha = file_sha256(path)
    _VERIFIED[key] = (now, sha)
    return sha


def _entry_files(root: Path) -> list[Path]:
    return sorted(
        p for p in Path(root).rglob("*") if p.is_file() and p.name != SEAL and not p.name.endswith(_SKIP_SUFFIXES)
    )


def _digests(files: dict[str, Path]) -> dict[str, dict[str, Any]]:
    return {name: {"size": p.stat().st_size, "sha256": _digest(p)} for name, p in files.items()}


def seal(root: Path, info: dict[str, Any] | None = None) -> None:
    """Write ``root/SEALED.json``: the size and sha256 of every file under ``root`` (call it last)."""
    root = Path(root)
    files = {p.relative_to(root).as_posix(): p for p in _entry_files(root)}
    save_json(root / SEAL, {"files": _digests(files), "info": info or {}})


def seal_file(path: Path) -> None:
    """Write ``<path>.sealed.json`` with the size and sha256 of the single-file entry ``path``."""
    path = Path(path)
    save_json(_file_seal(path), {"files": _digests({path.name: path}), "info": {}})


def _file_seal(path: Path) -> Path:
    return path.with_name(path.name + FILE_SEAL_SUFFIX)


def _check(seal_path: Path, root: Path) -> str | None:
    if not seal_path.is_file():
        return f"it has no seal ({seal_path.name}): unfinished, or written by an older version"
    try:
        files = json.loads(seal_path.read_text())["files"]
        expected = {str(n): (int(v["size"]), str(v["sha256"])) for n, v in files.items()}
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        return f"its seal {seal_path.name} is unreadable ({type(exc).__name__})"
    for name, (size, sha) in sorted(expected.items()):
        path = root / name
        if not path.is_file():
            return f"{name} is missing"
        if path.stat().st_size != size:
            return f"{name} has {path.stat().st_size} bytes, sealed with {size}"
        if _digest(path) != sha:
            return f"{name} changed since it was sealed (sha256 differs)"
    return None


def problem(root: Path) -> str | None:
    """What is wrong with the sealed directory ``root`` (missing, unsealed, a file missing or changed), or None."""
    root = Path(root)
    if not root.is_dir():
        return "it does not exist"
    return _check(root / SEAL, root)


def file_problem(path: Path) -> str | None:
    """What is wrong with the sealed single-file entry ``path``, or None."""
    path = Path(path)
    if not path.is_file():
        return "it does not exist"
    return _check(_file_seal(path), path.parent)


def reusable(root: Path, what: str) -> bool:
    """Whether the cache directory ``root`` is sealed and intact; a damaged one is removed with a warning
    (the caller rebuilds it: hold the entry's lock)."""
    root = Path(root)
    if not root.exists():
        return False
    issue = problem(root)
    if issue is None:
        return True
    log.warning("%s %s is damaged or incomplete (%s); rebuilding it", what, root, issue)
    shutil.rmtree(root) if root.is_dir() else root.unlink()
    return False


def reusable_file(path: Path, what: str) -> bool:
    """:func:`reusable` for a single-file entry (the file and its seal are removed when damaged)."""
    path = Path(path)
    if not path.exists():
        _file_seal(path).unlink(missing_ok=True)
        return False
    issue = file_problem(path)
    if issue is None:
        return True
    log.warning("%s %s is damaged or incomplete (%s); recomputing it", what, path, issue)
    path.unlink(missing_ok=True)
    _file_seal(path).unlink(missing_ok=True)
    return False
