"""Stable content hashes for cache keys and manifests."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

_CHUNK = 1 << 22  # bytes read at a time when hashing a file


def config_hash(obj: Any, n: int = 12) -> str:
    """Short stable hash of a JSON-serialisable object (keys sorted, unknown types as ``str``)."""
    blob = json.dumps(obj, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:n]


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes, read in chunks."""
    sha = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            sha.update(chunk)
    return sha.hexdigest()
