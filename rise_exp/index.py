"""On-disk signature index: a manifest, sketch tables and checksummed blocks of row vectors.

Layout of an index directory::

    manifest.json            format version, status ("building" | "complete"), num_rows, dim, dtype,
                             block_rows, method config, model identity, data hash, created, shards
    sketch.safetensors       tables the vectors were computed with (e.g. CountSketch buckets/signs)
    vectors-00000.npy        float16 [n, dim] signatures of one block
    rows-00000.npy           int64 [n] the row id of each vector (any rows, any order)
    tokens-00000.npy         optional: flat token ids of the block's rows (int32 or int64)
    offsets-00000.npy        optional: int64 [n + 1] start of each row in the flat tokens
    masks-00000.npy          optional: bool flat target masks, aligned with the tokens
    meta-00000.jsonl         optional: one JSON object of free-form metadata per row
    block-00000.done         marker {block, rows, files: {name: sha256}}, written last and atomically

A block without a valid marker does not exist: a resumed build deletes and redoes it, and
:meth:`SignatureIndex.open` refuses an index with one.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rise_exp.errors import ConfigError, IndexError_, allowed

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
TABLES = "sketch.safetensors"
DTYPES = ("float16", "float32")
#: Manifest keys that identify a build; a resume with any of them changed is refused.
IDENTITY_KEYS = ("format_version", "num_rows", "dim", "dtype", "tables_sha256")
#: Keys the index writes itself; a caller's manifest may not set them.
RESERVED_KEYS = IDENTITY_KEYS + ("status", "block_rows", "created", "finalized", "shards")
_BLOCK_FILE = re.compile(r"^(vectors|rows|tokens|offsets|masks|meta)-(\d+)\.(npy|jsonl)(\.tmp)?$")
_MARKER_FILE = re.compile(r"^block-(\d+)\.done(\.tmp)?$")
_CHUNK = 1 << 22


# ----------------------------------------------------------------------------- file helpers


class _HashingFile:
    """A write-only file wrapper that hashes every byte written through it."""

    def __init__(self, fh: Any) -> None:
        self.fh = fh
        self.sha = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        return self.fh.write(data)


def _sha256(path: Path) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            sha.update(chunk)
    return sha.hexdigest()


def _write_atomic(path: Path, writer: Any) -> str:
    """Write ``path`` via a temporary file and ``os.replace``; return the sha256 of its bytes."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        hashed = _HashingFile(fh)
        writer(hashed)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return hashed.sha.hexdigest()


def _save_npy(path: Path, array: np.ndarray) -> str:
    return _write_atomic(path, lambda fh: np.save(fh, np.ascontiguousarray(array), allow_pickle=False))


def _save_json(path: Path, obj: Any) -> str:
    text = json.dumps(obj, indent=2, sort_keys=True).encode()
    return _write_atomic(path, lambda fh: fh.write(text))


def _jsonable(obj: Any) -> Any:
    """Plain JSON types for a config value (OmegaConf containers, tuples, paths, numpy scalars)."""
    if type(obj).__module__.startswith("omegaconf"):
        from omegaconf import OmegaConf

        obj = OmegaConf.to_container(obj, resolve=True)
    return json.loads(json.dumps(obj, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))


def _flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(obj, Mapping) and obj:
        out: dict[str, Any] = {}
        for key, value in obj.items():
            out.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: obj}


def manifest_diff(old: Mapping[str, Any], new: Mapping[str, Any], keys: Sequence[str]) -> list[str]:
    """Lines ``key: old -> new`` for every (dotted, nested) key of ``keys`` whose value differs."""
    lines = []
    for key in keys:
        a, b = _flatten(old.get(key), key), _flatten(new.get(key), key)
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


def _block_files(block: int) -> dict[str, str]:
    return {
        "vectors": f"vectors-{block:05d}.npy",
        "rows": f"rows-{block:05d}.npy",
        "tokens": f"tokens-{block:05d}.npy",
        "offsets": f"offsets-{block:05d}.npy",
        "masks": f"masks-{block:05d}.npy",
        "meta": f"meta-{block:05d}.jsonl",
    }


def _marker_name(block: int) -> str:
    return f"block-{block:05d}.done"


def _read_marker(root: Path, block: int, *, check_sums: bool) -> dict[str, Any]:
    """Load and check one block marker; raise IndexError_ naming the block and file on any problem."""
    path = root / _marker_name(block)
    try:
        marker = json.loads(path.read_text())
        files: dict[str, str] = dict(marker["files"])
        n = int(marker["rows"])
    except FileNotFoundError:
        raise IndexError_(f"{root}: block {block} has no marker {path.name} (half-written block)") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise IndexError_(f"{root}: block {block} marker {path.name} is unreadable ({exc})") from None
    if "vectors" not in files or "rows" not in files or not set(files) <= set(_block_files(block)):
        raise IndexError_(f"{root}: block {block} marker {path.name} lists unexpected files {sorted(files)}")
    for kind, digest in files.items():
        fpath = root / _block_files(block)[kind]
        if not fpath.is_file():
            raise IndexError_(f"{root}: block {block} file {fpath.name} is missing")
        if check_sums and _sha256(fpath) != digest:
            raise IndexError_(f"{root}: block {block} file {fpath.name} fails its sha256 checksum")
    marker["rows"] = n
    return marker


def _scan(root: Path) -> tuple[set[int], set[int]]:
    """Block ids that have a marker, and block ids that have any data file."""
    markers, data = set(), set()
    for entry in os.listdir(root):
        if m := _MARKER_FILE.match(entry):
            (data if m.group(2) else markers).add(int(m.group(1)))
        elif m := _BLOCK_FILE.match(entry):
            data.add(int(m.group(2)))
    return markers, data


def _delete_block(root: Path, block: int) -> None:
    names = [_marker_name(block), *_block_files(block).values()]
    for name in names:
        for p in (root / name, root / (name + ".tmp")):
            p.unlink(missing_ok=True)


def _load_rows(root: Path, block: int, n: int) -> np.ndarray:
    rows = np.load(root / _block_files(block)["rows"], allow_pickle=False)
    if rows.ndim != 1 or rows.shape[0] != n or rows.dtype != np.int64:
        raise IndexError_(f"{root}: block {block} rows file has shape {rows.shape} {rows.dtype}, marker says {n} int64")
    return rows


# ----------------------------------------------------------------------------- writer


class IndexWriter:
    """Writes (or resumes) an index directory block by block; :meth:`finalize` seals it.

    Args:
        path: Index directory (created if missing).
        dim: Vector dimension.
        num_rows: Rows ``0..num_rows-1`` the finished index must hold, each exactly once.
        manifest: Build identity stored in ``manifest.json``: conventionally ``method`` (full method
            config), ``model`` (model identity) and ``data_hash``; any other JSON-able keys are kept too.
            Every key takes part in the resume check.
        tables: Tensors saved to ``sketch.safetensors`` (e.g. RISE's CountSketch buckets and signs).
        dtype: Vector storage dtype, one of ``DTYPES``.
        block_rows: Nominal rows per block (informational; blocks may be smaller).
        resume: Keep the valid blocks of an existing identical build. When False an existing index in
            ``path`` is deleted first.
        clean_partial: Delete blocks without a valid marker when resuming. Data-parallel ranks other
            than the first should pass False so that they never touch each other's files.

    Raises:
        IndexError_: when resuming a build whose identity (manifest keys, dim, num_rows, dtype, tables)
            differs; the message lists every differing key with old and new values.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        dim: int,
        num_rows: int,
        manifest: Mapping[str, Any],
        tables: Mapping[str, torch.Tensor] | None = None,
        dtype: str = "float16",
        block_rows: int | None = None,
        resume: bool = True,
        clean_partial: bool = True,
    ) -> None:
        if dtype not in DTYPES:
            raise allowed("index dtype", dtype, DTYPES)
        if int(dim) < 1 or int(num_rows) < 0:
            raise ConfigError(f"index needs dim >= 1 and num_rows >= 0, got dim={dim}, num_rows={num_rows}")
        clash = sorted(set(manifest) & set(RESERVED_KEYS))
        if clash:
            raise ConfigError(f"manifest keys {clash} are reserved by the index; rename them")
        self.root = Path(path)
        self.dim, self.num_rows, self.dtype = int(dim), int(num_rows), dtype
        self.tables = {k: v.detach().cpu().contiguous() for k, v in (tables or {}).items()}
        self.manifest: dict[str, Any] = {
            **_jsonable(dict(manifest)),
            "format_version": FORMAT_VERSION,
            "num_rows": self.num_rows,
            "dim": self.dim,
            "dtype": dtype,
            "tables_sha256": tables_sha256(self.tables),
            "block_rows": block_rows,
            "status": "building",
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "shards": [],
        }
        self.completed_blocks: set[int] = set()
        self.completed_mask = np.zeros(self.num_rows, dtype=bool)
        self.root.mkdir(parents=True, exist_ok=True)
        old_path = self.root / MANIFEST
        if old_path.exists() and not resume:
            self._wipe()
        if old_path.exists():
            self._resume(clean_partial)
        else:
            if self.tables:
                from safetensors.torch import save_file

                save_file(self.tables, str(self.root / TABLES))
            _save_json(old_path, self.manifest)

    def _wipe(self) -> None:
        markers, data = _scan(self.root)
        for block in markers | data:
            _delete_block(self.root, block)
        for name in (MANIFEST, TABLES):
            (self.root / name).unlink(missing_ok=True)

    def _resume(self, clean_partial: bool) -> None:
        try:
            old = json.loads((self.root / MANIFEST).read_text())
        except ValueError as exc:
            raise IndexError_(f"{self.root / MANIFEST} is unreadable ({exc}); delete the index or pass resume=False")
        keys = sorted((set(old) | set(self.manifest)) - {"status", "block_rows", "created", "finalized", "shards"})
        diff = manifest_diff(old, self.manifest, keys)
        if diff:
            raise IndexError_(
                f"refusing to resume index {self.root}: the build differs from the one on disk in "
                + "; ".join(diff)
                + ". Use a new index directory or pass resume=False to rebuild."
            )
        self.manifest["created"] = old.get("created", self.manifest["created"])
        self.manifest["status"] = old.get("status", "building")
        markers, data = _scan(self.root)
        for block in sorted(markers | data):
            try:
                marker = _read_marker(self.root, block, check_sums=True)
                rows = _load_rows(self.root, block, marker["rows"])
            except IndexError_:
                if clean_partial:
                    _delete_block(self.root, block)
                continue
            if clean_partial:  # leftovers of an interrupted rewrite of a valid block
                for name in [_marker_name(block), *_block_files(block).values()]:
                    (self.root / (name + ".tmp")).unlink(missing_ok=True)
            self.completed_blocks.add(block)
            self.completed_mask[rows] = True

    @property
    def completed_rows(self) -> set[int]:
        """Row ids already in valid blocks (of this writer's view of the directory)."""
        return set(np.flatnonzero(self.completed_mask).tolist())

    def pending_rows(self) -> np.ndarray:
        """Sorted int64 row ids not yet in a valid block: the rows a resumed build still has to compute."""
        return np.flatnonzero(~self.completed_mask).astype(np.int64)

    def write_block(
        self,
        block_id: int,
        rows: np.ndarray,
        vectors: np.ndarray,
        tokens: Sequence[np.ndarray] | None = None,
        masks: Sequence[np.ndarray] | None = None,
        meta: Sequence[Mapping[str, Any]] | None = None,
    ) -> None:
        """Write one block of vectors; its marker goes last, so an interrupted write leaves no block.

        Args:
            block_id: A non-negative id unique within the index (not necessarily contiguous).
            rows: int [n] row ids of the vectors, in ``0..num_rows-1``.
            vectors: float [n, dim], stored as the index dtype.
            tokens: Optional n token-id arrays each vector was computed from.
            masks: Optional n target masks aligned with ``tokens``.
            meta: Optional n JSON-able dicts of free-form row metadata.
        """
        block_id = int(block_id)
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        vectors = np.asarray(vectors)
        n = rows.shape[0]
        if block_id < 0 or block_id in self.completed_blocks:
            raise IndexError_(f"{self.root}: block id {block_id} is negative or already written")
        if vectors.shape != (n, self.dim):
            raise IndexError_(f"{self.root}: block {block_id} vectors have shape {vectors.shape}, expected ({n}, {self.dim})")
        if n and (rows.min() < 0 or rows.max() >= self.num_rows):
            raise IndexError_(f"{self.root}: block {block_id} has row ids outside 0..{self.num_rows - 1}")
        if np.unique(rows).shape[0] != n or self.completed_mask[rows].any():
            raise IndexError_(f"{self.root}: block {block_id} repeats row ids (within the block or from earlier blocks)")
        for name, seq in (("tokens", tokens), ("masks", masks), ("meta", meta)):
            if seq is not None and len(seq) != n:
                raise IndexError_(f"{self.root}: block {block_id} has {len(seq)} {name} for {n} rows")
        if masks is not None and tokens is None:
            raise IndexError_(f"{self.root}: block {block_id} has masks but no tokens")
        if self.manifest["status"] == "complete":
            self.manifest["status"] = "building"
            _save_json(self.root / MANIFEST, self.manifest)
        names = _block_files(block_id)
        digests = {
            "vectors": _save_npy(self.root / names["vectors"], vectors.astype(self.dtype, copy=False)),
            "rows": _save_npy(self.root / names["rows"], rows),
        }
        if tokens is not None:
            toks = [np.asarray(t).reshape(-1) for t in tokens]
            flat = np.concatenate(toks) if toks else np.zeros(0, dtype=np.int64)
            small = flat.size == 0 or (flat.min() >= np.iinfo(np.int32).min and flat.max() <= np.iinfo(np.int32).max)
            offsets = np.concatenate([[0], np.cumsum([t.shape[0] for t in toks])]).astype(np.int64)
            digests["tokens"] = _save_npy(self.root / names["tokens"], flat.astype(np.int32 if small else np.int64))
            digests["offsets"] = _save_npy(self.root / names["offsets"], offsets)
            if masks is not None:
                ms = [np.asarray(m, dtype=bool).reshape(-1) for m in masks]
                if [m.shape[0] for m in ms] != [t.shape[0] for t in toks]:
                    raise IndexError_(f"{self.root}: block {block_id} masks and tokens differ in length")
                flat_m = np.concatenate(ms) if ms else np.zeros(0, dtype=bool)
                digests["masks"] = _save_npy(self.root / names["masks"], flat_m)
        if meta is not None:
            text = "".join(json.dumps(_jsonable(dict(m)), sort_keys=True) + "\n" for m in meta).encode()
            digests["meta"] = _write_atomic(self.root / names["meta"], lambda fh: fh.write(text))
        _save_json(self.root / _marker_name(block_id), {"block": block_id, "rows": n, "files": digests})
        self.completed_blocks.add(block_id)
        self.completed_mask[rows] = True

    def finalize(self) -> SignatureIndex:
        """Check that every row is present exactly once, mark the manifest complete, and open the index.

        Reads every marker on disk, so blocks written by other writers (ranks) count too.
        """
        markers, data = _scan(self.root)
        if data - markers:
            raise IndexError_(f"{self.root}: cannot finalize, blocks {sorted(data - markers)} have no marker")
        shards = []
        for block in sorted(markers):
            marker = _read_marker(self.root, block, check_sums=False)
            shards.append({"block": block, "rows": marker["rows"], "files": marker["files"]})
        self.manifest["shards"] = shards
        _check_coverage(self.root, self.num_rows, {s["block"]: s["rows"] for s in shards})
        self.manifest["status"] = "complete"
        self.manifest["finalized"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        _save_json(self.root / MANIFEST, self.manifest)
        return SignatureIndex.open(self.root, verify="lazy")


def _check_coverage(root: Path, num_rows: int, blocks: Mapping[int, int]) -> dict[int, np.ndarray]:
    """Load each block's rows and check rows ``0..num_rows-1`` appear exactly once overall."""
    counts = np.zeros(num_rows, dtype=np.int64)
    out = {}
    for block, n in blocks.items():
        rows = _load_rows(root, block, n)
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


# ----------------------------------------------------------------------------- reader


class SignatureIndex:
    """A complete, verified index opened read-only; vectors are memory-mapped block by block.

    Attributes:
        root: The index directory.
        manifest: The parsed ``manifest.json``.
        num_rows: Number of rows.
        dim: Vector dimension.
        dtype: Storage dtype name.
    """

    def __init__(self, root: Path, manifest: dict[str, Any], blocks: dict[int, np.ndarray], lazy: bool) -> None:
        self.root = root
        self.manifest = manifest
        self.num_rows = int(manifest["num_rows"])
        self.dim = int(manifest["dim"])
        self.dtype = str(manifest["dtype"])
        self._shards = {int(s["block"]): s for s in manifest["shards"]}
        self._rows = blocks
        self._verified: set[int] = set() if lazy else set(blocks)
        self._tables: dict[str, torch.Tensor] | None = None
        self._where: np.ndarray | None = None

    @classmethod
    def open(cls, path: str | os.PathLike, *, verify: str = "eager") -> SignatureIndex:
        """Open a finished index, refusing anything half-written.

        Args:
            path: Index directory.
            verify: ``"eager"`` checks every file's sha256 now; ``"lazy"`` checks each block the first
                time it is read (markers, file presence and row coverage are always checked at open).

        Raises:
            IndexError_: naming the file or block when the manifest is missing, unfinished or from
                another format version, a marker or file is missing, a checksum fails, or a row is
                missing or repeated.
        """
        if verify not in ("eager", "lazy"):
            raise allowed("index verify", verify, ("eager", "lazy"))
        root = Path(path)
        try:
            manifest = json.loads((root / MANIFEST).read_text())
        except FileNotFoundError:
            raise IndexError_(f"{root}: no {MANIFEST}; not an index (or its build never started)") from None
        except ValueError as exc:
            raise IndexError_(f"{root / MANIFEST} is unreadable ({exc})") from None
        if manifest.get("format_version") != FORMAT_VERSION:
            raise IndexError_(f"{root / MANIFEST}: format_version {manifest.get('format_version')!r}, expected {FORMAT_VERSION}")
        if manifest.get("status") != "complete":
            raise IndexError_(f"{root / MANIFEST}: status is {manifest.get('status')!r}, the build did not finish")
        if manifest.get("tables_sha256") and not (root / TABLES).is_file():
            raise IndexError_(f"{root}: {TABLES} is missing")
        sizes: dict[int, int] = {}
        for shard in manifest.get("shards", []):
            block = int(shard["block"])
            marker = _read_marker(root, block, check_sums=verify == "eager")
            if marker["files"] != shard["files"] or marker["rows"] != shard["rows"]:
                raise IndexError_(f"{root}: block {block} marker {_marker_name(block)} disagrees with {MANIFEST}")
            sizes[block] = marker["rows"]
        markers, data = _scan(root)
        extra = (markers | data) - set(sizes)
        if extra:
            raise IndexError_(f"{root}: blocks {sorted(extra)} are on disk but not in {MANIFEST} (written after finalize?)")
        blocks = _check_coverage(root, int(manifest["num_rows"]), sizes)
        index = cls(root, manifest, blocks, lazy=verify == "lazy")
        if verify == "eager":
            index.tables  # noqa: B018 - loads and checks the sketch tables now
        return index

    def __len__(self) -> int:
        return self.num_rows

    @property
    def block_ids(self) -> list[int]:
        """Block ids in storage order."""
        return sorted(self._rows)

    @property
    def tables(self) -> dict[str, torch.Tensor]:
        """The sketch tables saved with the index (empty dict when none)."""
        if self._tables is None:
            if (self.root / TABLES).is_file():
                from safetensors.torch import load_file

                tables = load_file(str(self.root / TABLES))
            else:
                tables = {}
            if tables_sha256(tables) != self.manifest.get("tables_sha256"):
                raise IndexError_(f"{self.root}: {TABLES} does not match its checksum in {MANIFEST}")
            self._tables = tables
        return self._tables

    @property
    def bytes_per_row(self) -> int:
        """Bytes of vector storage per row."""
        return self.dim * np.dtype(self.dtype).itemsize

    @property
    def nbytes(self) -> int:
        """Bytes of vector storage (excluding headers, row ids, tokens and tables)."""
        return self.num_rows * self.bytes_per_row

    def _file(self, block: int, kind: str) -> Path:
        if kind not in self._shards[block]["files"]:
            raise IndexError_(f"{self.root}: the index stores no {kind} (block {block})")
        if block not in self._verified:
            for k, digest in self._shards[block]["files"].items():
                p = self.root / _block_files(block)[k]
                if _sha256(p) != digest:
                    raise IndexError_(f"{self.root}: block {block} file {p.name} fails its sha256 checksum")
            self._verified.add(block)
        return self.root / _block_files(block)[kind]

    def block(self, block: int) -> tuple[np.ndarray, np.ndarray]:
        """Row ids and memory-mapped vectors ``[n, dim]`` of one block."""
        vectors = np.load(self._file(block, "vectors"), mmap_mode="r", allow_pickle=False)
        return self._rows[block], vectors

    def iter_blocks(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield ``(row ids, memory-mapped vectors)`` per block, in block-id order."""
        for block in self.block_ids:
            yield self.block(block)

    def vectors(self, dtype: str | None = None) -> np.ndarray:
        """All vectors assembled ``[num_rows, dim]`` in row order (for small pools only)."""
        out = np.empty((self.num_rows, self.dim), dtype=dtype or self.dtype)
        for rows, vecs in self.iter_blocks():
            out[rows] = vecs
        return out

    def _locate(self, row: int) -> tuple[int, int]:
        if self._where is None:
            where = np.empty((self.num_rows, 2), dtype=np.int64)
            for block, rows in self._rows.items():
                where[rows, 0] = block
                where[rows, 1] = np.arange(rows.shape[0])
            self._where = where
        if not 0 <= int(row) < self.num_rows:
            raise IndexError_(f"{self.root}: row {row} is outside 0..{self.num_rows - 1}")
        block, pos = self._where[int(row)]
        return int(block), int(pos)

    def row_tokens(self, row: int) -> tuple[np.ndarray, np.ndarray]:
        """Token ids (int64) and target mask (bool) a row's vector was computed from.

        The mask is all True when the build stored tokens without masks.
        """
        block, pos = self._locate(row)
        self._file(block, "tokens")
        offsets = np.load(self._file(block, "offsets"), allow_pickle=False)
        start, stop = int(offsets[pos]), int(offsets[pos + 1])
        tokens = np.load(self._file(block, "tokens"), mmap_mode="r", allow_pickle=False)[start:stop].astype(np.int64)
        if "masks" in self._shards[block]["files"]:
            masks = np.load(self._file(block, "masks"), mmap_mode="r", allow_pickle=False)
            return tokens, np.array(masks[start:stop], dtype=bool)
        return tokens, np.ones(stop - start, dtype=bool)

    def row_meta(self, row: int) -> dict[str, Any]:
        """The free-form metadata stored for a row."""
        block, pos = self._locate(row)
        with open(self._file(block, "meta")) as fh:
            for i, line in enumerate(fh):
                if i == pos:
                    return json.loads(line)
        raise IndexError_(f"{self.root}: block {block} metadata has no line {pos + 1}")
