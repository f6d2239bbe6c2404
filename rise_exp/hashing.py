"""Stable content hashes for cache keys and manifests."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def config_hash(obj: Any, n: int = 12) -> str:
    """Short stable hash of a JSON-serialisable object (keys sorted, unknown types as ``str``)."""
    blob = json.dumps(obj, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:n]
