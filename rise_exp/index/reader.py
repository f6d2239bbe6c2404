"""Reading a finished index: :class:`SignatureIndex` (verified, memory-mapped block by block)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rise_exp.core.errors import IndexError_, allowed
from rise_exp.index.files import (
    DTYPES,
    FORMAT_VERSION,
    MANIFEST,
    TABLES,
    block_files,
    check_coverage,
    marker_name,
    read_marker,
    scan,
    sha256,
    tables_sha256,
)
from rise_exp.index.plan import PLAN


def sha256_or_none(path: Path) -> str | None:
    """sha256 of a file, None when it does not exist."""
    return sha256(path) if path.is_file() else None


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
            raise IndexError_(
                f"{root / MANIFEST}: format_version {manifest.get('format_version')!r}, expected {FORMAT_VERSION}"
            )
        if manifest.get("status") != "complete":
            raise IndexError_(f"{root / MANIFEST}: status is {manifest.get('status')!r}, the build did not finish")
        if manifest.get("tables_sha256") and not (root / TABLES).is_file():
            raise IndexError_(f"{root}: {TABLES} is missing")
        try:
            num_rows, dim, dtype = int(manifest["num_rows"]), int(manifest["dim"]), str(manifest["dtype"])
            shards = [(int(s["block"]), s) for s in manifest["shards"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise IndexError_(f"{root / MANIFEST}: malformed ({type(exc).__name__}: {exc})") from None
        if dtype not in DTYPES or dim < 1:
            raise IndexError_(f"{root / MANIFEST}: dim {dim} / dtype {dtype!r} are not a valid vector format")
        sizes: dict[int, int] = {}
        for block, shard in shards:
            marker = read_marker(root, block, check_sums=verify == "eager", vectors=(dim, dtype))
            if marker["files"] != shard.get("files") or marker["rows"] != shard.get("rows"):
                raise IndexError_(f"{root}: block {block} marker {marker_name(block)} disagrees with {MANIFEST}")
            sizes[block] = marker["rows"]
        plan = manifest.get("plan")
        if verify == "eager" and isinstance(plan, dict) and sha256_or_none(root / PLAN) != plan.get("sha256"):
            raise IndexError_(f"{root}: {PLAN} is missing or does not match its checksum in {MANIFEST}")
        markers, data = scan(root)
        extra = (markers | data) - set(sizes)
        if extra:
            raise IndexError_(
                f"{root}: blocks {sorted(extra)} are on disk but not in {MANIFEST} (written after finalize?)"
            )
        blocks = check_coverage(root, num_rows, sizes)
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
                p = self.root / block_files(block)[k]
                if sha256(p) != digest:
                    raise IndexError_(f"{self.root}: block {block} file {p.name} fails its sha256 checksum")
            self._verified.add(block)
        return self.root / block_files(block)[kind]

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

    @property
    def stores_tokens(self) -> bool:
        """Whether every block keeps the token ids its vectors were computed from (:meth:`row_tokens`)."""
        return bool(self._shards) and all("tokens" in s["files"] for s in self._shards.values())

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

    def rows_meta(self, rows: Sequence[int]) -> list[dict[str, Any]]:
        """The metadata of several rows, reading each block's metadata file once (rows in any order)."""
        where = [self._locate(int(r)) for r in rows]
        wanted: dict[int, set[int]] = {}
        for block, pos in where:
            wanted.setdefault(block, set()).add(pos)
        found: dict[tuple[int, int], dict[str, Any]] = {}
        for block, positions in wanted.items():
            with open(self._file(block, "meta")) as fh:
                for i, line in enumerate(fh):
                    if i in positions:
                        found[(block, i)] = json.loads(line)
        missing = [w for w in where if w not in found]
        if missing:
            raise IndexError_(f"{self.root}: block {missing[0][0]} metadata has no line {missing[0][1] + 1}")
        return [found[w] for w in where]
