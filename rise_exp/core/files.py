"""Atomic writes: a file exists under its name only when every byte of it was written (temporary name,
fsync, ``os.replace``), and the writer learns the sha256 of what it wrote."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from rise_exp.core.errors import ConfigError


class HashingFile:
    """A write-only file wrapper that hashes every byte written through it."""

    def __init__(self, fh: Any) -> None:
        self.fh = fh
        self.sha = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        return self.fh.write(data)


def write_atomic(path: Path, writer: Any) -> str:
    """Write ``path`` via a temporary file and ``os.replace``; return the sha256 of its bytes.

    A failed write (disk full, file size limit) removes the temporary file and raises an ``OSError`` that
    names ``path``.
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as fh:
            hashed = HashingFile(fh)
            writer(hashed)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return hashed.sha.hexdigest()


def save_npy(path: Path, array: np.ndarray) -> str:
    return write_atomic(path, lambda fh: np.save(fh, np.ascontiguousarray(array), allow_pickle=False))


def save_json(path: Path, obj: Any) -> str:
    text = json.dumps(obj, indent=2, sort_keys=True).encode()
    return write_atomic(path, lambda fh: fh.write(text))


def check_dir_usable(path: Path, setting: str) -> None:
    """Raise a ConfigError naming ``setting`` unless ``path`` is (or can be created as) a writable directory;
    nothing is created."""
    path = Path(path).absolute()
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        where = "is a file" if probe == path else f"is under the file {probe}"
        raise ConfigError(f"{setting}={path} {where}, not a directory")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ConfigError(f"{setting}={path}: {probe} is not writable")
