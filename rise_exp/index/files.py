"""On-disk layout of a signature index: names, atomic checksummed writes, block markers.

The layout itself is described in :mod:`rise_exp.index`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rise_exp.core.errors import IndexError_
from rise_exp.core.hashing import file_sha256 as sha256

FORMAT_VERSION = 2  # 2: blocks follow a stored batch plan (plan.json)
MANIFEST = "manifest.json"
TABLES = "sketch.safetensors"
DTYPES = ("float16", "float32")
#: Manifest keys that identify a build; a resume with any of them changed is refused.
IDENTITY_KEYS = ("format_version", "num_rows", "dim", "dtype", "tables_sha256")
#: Keys the index writes itself; a caller's manifest may not set them.
RESERVED_KEYS = IDENTITY_KEYS + ("status", "block_rows", "created", "finalized", "shards", "plan")
#: Manifest keys a caller may set that describe how to use the index, not what it holds (no resume check).
INFO_KEYS = ("serving",)
BLOCK_FILE = re.compile(r"^(vectors|rows|tokens|offsets|masks|meta)-(\d+)\.(npy|jsonl)(\.tmp)?$")
MARKER_FILE = re.compile(r"^block-(\d+)\.done(\.tmp)?$")


def jsonable(obj: Any) -> Any:
    """Plain JSON types for a config value (OmegaConf containers, tuples, paths, numpy scalars)."""
    if type(obj).__module__.startswith("omegaconf"):
        from omegaconf import OmegaConf

        obj = OmegaConf.to_container(obj, resolve=True)
    return json.loads(json.dumps(obj, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))


def flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(obj, Mapping) and obj:
        out: dict[str, Any] = {}
        for key, value in obj.items():
            out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: obj}


def manifest_diff(old: Mapping[str, Any], new: Mapping[str, Any], keys: Sequence[str]) -> list[str]:
    """Lines ``key: old -> new`` for every (dotted, nested) key of ``keys`` whose value differs."""
    lines = []
    for key in keys:
        a, b = flatten(old.get(key), key), flatten(new.get(key), key)
        for sub in sorted(set(a) | set(b)):
            if a.get(sub, "<missing>") != b.get(sub, "<missing>"):
                lines.append(f"{sub}: {a.get(sub, '<missing>')!r} -> {b.get(sub, '<missing>')!r}")
    return lines


def tables_sha256(tables: Mapping[str, torch.Tensor] | None) -> str | None:
    """A content hash of sketch tables (names, dtypes, shapes and values); None without tables."""
    if not tables:
        return None
    sha = hashlib.sha256()
    for name in sorted(tables):
        t = tables[name].detach().cpu().contiguous()
        sha.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        sha.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return sha.hexdigest()


def block_files(block: int) -> dict[str, str]:
    return {
        "vectors": f"vectors-{block:05d}.npy",
        "rows": f"rows-{block:05d}.npy",
        "tokens": f"tokens-{block:05d}.npy",
        "offsets": f"offsets-{block:05d}.npy",
        "masks": f"masks-{block:05d}.npy",
        "meta": f"meta-{block:05d}.jsonl",
    }


def marker_name(block: int) -> str:
    return f"block-{block:05d}.done"


def read_marker(root: Path, block: int, *, check_sums: bool, vectors: tuple[int, str] | None = None) -> dict[str, Any]:
    """Load and check one block marker; raise IndexError_ naming the block and file on any problem.

    Args:
        check_sums: Also verify every file's sha256.
        vectors: ``(dim, dtype)`` to check the vectors file's header and size against (before the sums).
    """
    path = root / marker_name(block)
    try:
        marker = json.loads(path.read_text())
        files: dict[str, str] = dict(marker["files"])
        n = int(marker["rows"])
    except FileNotFoundError:
        raise IndexError_(f"{root}: block {block} has no marker {path.name} (half-written block)") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise IndexError_(f"{root}: block {block} marker {path.name} is unreadable ({exc})") from None
    if "vectors" not in files or "rows" not in files or not set(files) <= set(block_files(block)):
        raise IndexError_(f"{root}: block {block} marker {path.name} lists unexpected files {sorted(files)}")
    for kind in files:
        fpath = root / block_files(block)[kind]
        if not fpath.is_file():
            raise IndexError_(f"{root}: block {block} file {fpath.name} is missing")
    if vectors is not None:
        check_vectors(root, block, n, *vectors)
    for kind, digest in files.items():
        fpath = root / block_files(block)[kind]
        if check_sums and sha256(fpath) != digest:
            raise IndexError_(f"{root}: block {block} file {fpath.name} fails its sha256 checksum")
    marker["rows"] = n
    return marker


def scan(root: Path) -> tuple[set[int], set[int]]:
    """Block ids that have a marker, and block ids that have any data file."""
    markers, data = set(), set()
    for entry in os.listdir(root):
        if m := MARKER_FILE.match(entry):
            (data if m.group(2) else markers).add(int(m.group(1)))
        elif m := BLOCK_FILE.match(entry):
            data.add(int(m.group(2)))
    return markers, data


def foreign_entries(root: Path) -> list[str]:
    """Names in ``root`` that no index writes (an index directory may be deleted only without them)."""
    known = {MANIFEST, TABLES, "plan.json", "search"}  # search/: compressed copies (rise_exp.retrieval.ann)
    return sorted(
        e
        for e in os.listdir(root)
        if e.removesuffix(".tmp") not in known and not BLOCK_FILE.match(e) and not MARKER_FILE.match(e)
    )


def delete_block(root: Path, block: int) -> None:
    names = [marker_name(block), *block_files(block).values()]
    for name in names:
        for p in (root / name, root / (name + ".tmp")):
            p.unlink(missing_ok=True)


def check_vectors(root: Path, block: int, n: int, dim: int, dtype: str) -> None:
    """Check a block's vectors file header and size against ``[n, dim]`` of ``dtype`` (reads no data)."""
    path = root / block_files(block)["vectors"]
    try:
        with open(path, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _, got = read(fh)
            start = fh.tell()
    except (OSError, ValueError) as exc:
        raise IndexError_(f"{root}: block {block} file {path.name} is unreadable ({exc})") from None
    if tuple(shape) != (n, dim) or got != np.dtype(dtype):
        raise IndexError_(
            f"{root}: block {block} file {path.name} holds [{', '.join(map(str, shape))}] {got}, but {MANIFEST} "
            f"says dim {dim}, dtype {dtype} and the marker {n} rows"
        )
    if path.stat().st_size < start + n * dim * np.dtype(dtype).itemsize:
        raise IndexError_(f"{root}: block {block} file {path.name} is truncated")


def load_rows(root: Path, block: int, n: int) -> np.ndarray:
    path = root / block_files(block)["rows"]
    try:
        rows = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise IndexError_(f"{root}: block {block} file {path.name} is unreadable ({exc})") from None
    if rows.ndim != 1 or rows.shape[0] != n or rows.dtype != np.int64:
        raise IndexError_(f"{root}: block {block} rows file has shape {rows.shape} {rows.dtype}, marker says {n} int64")
    return rows


def check_coverage(root: Path, num_rows: int, blocks: Mapping[int, int]) -> dict[int, np.ndarray]:
    """Load each block's rows and check rows ``0..num_rows-1`` appear exactly once overall."""
    counts = np.zeros(num_rows, dtype=np.int64)
    out = {}
    for block, n in blocks.items():
        rows = load_rows(root, block, n)
        if n and (rows.min() < 0 or rows.max() >= num_rows):
            raise IndexError_(f"{root}: block {block} has row ids outside 0..{num_rows - 1}")
        np.add.at(counts, rows, 1)
        out[block] = rows
    missing, dup = np.flatnonzero(counts == 0), np.flatnonzero(counts > 1)
    if missing.size or dup.size:
        raise IndexError_(
            f"{root}: rows must appear exactly once; {missing.size} missing (first: {missing[:5].tolist()}), "
            f"{dup.size} repeated (first: {dup[:5].tolist()})"
        )
    return out
