"""Writing an index block by block: :class:`IndexWriter` (create, resume, repair, finalize)."""

from __future__ import annotations

import datetime as _dt
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rise_exp.core.errors import ConfigError, IndexError_, allowed
from rise_exp.core.files import save_json, save_npy, write_atomic
from rise_exp.index.files import (
    DTYPES,
    FORMAT_VERSION,
    MANIFEST,
    RESERVED_KEYS,
    TABLES,
    block_files,
    check_coverage,
    delete_block,
    jsonable,
    marker_name,
    read_marker,
    scan,
    tables_sha256,
)
from rise_exp.index.plan import PLAN, BatchPlan
from rise_exp.index.reader import SignatureIndex
from rise_exp.index.resume import ResumeMixin


class IndexWriter(ResumeMixin):
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
        plan: The batch plan of the build (:class:`BatchPlan`). Stored as ``plan.json``; block ``b`` must
            then hold exactly the plan's rows of block ``b``. A resumed build follows the plan already
            stored (:attr:`plan`), whatever plan is passed. None: blocks are free-form.
        resume: Keep the valid blocks of an existing identical build. When False an existing index in
            ``path`` is deleted first.
        clean_partial: Delete (with a logged warning naming the block and the reason) blocks that are
            half-written, damaged or not in the plan, and restore a damaged plan or sketch file. False
            (data-parallel ranks other than the first) never deletes, repairs or creates anything at open.
        rebuild_hint: How the user rebuilds, named in the refusal of a changed build.

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
        plan: BatchPlan | None = None,
        resume: bool = True,
        clean_partial: bool = True,
        rebuild_hint: str = "pass resume=False to rebuild it, or use a new index directory",
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
        if plan is not None:
            plan.check(self.num_rows)
        self.plan = plan
        self.rebuild_hint = rebuild_hint
        self.clean = clean_partial
        self.manifest: dict[str, Any] = {
            **jsonable(dict(manifest)),
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
        if plan is not None:
            self.manifest["plan"] = plan.summary()
        self.completed_blocks: set[int] = set()
        self.completed_mask = np.zeros(self.num_rows, dtype=bool)
        #: One line per repair made (or needed) while resuming; each is also logged as a warning.
        self.repairs: list[str] = []
        if clean_partial:
            self.root.mkdir(parents=True, exist_ok=True)
        old_path = self.root / MANIFEST
        if old_path.exists() and not resume and clean_partial:
            self._wipe()
        if old_path.exists():
            self._resume()
        elif clean_partial:
            self._create()

    # ------------------------------------------------------------------ create / wipe
    def _create(self) -> None:
        if self.tables:
            from safetensors.torch import save_file

            save_file(self.tables, str(self.root / TABLES))
        if self.plan is not None:
            write_atomic(self.root / PLAN, lambda fh: fh.write(self.plan.to_json()))
        save_json(self.root / MANIFEST, self.manifest)

    def _wipe(self) -> None:
        markers, data = scan(self.root)
        for block in markers | data:
            delete_block(self.root, block)
        for name in (MANIFEST, TABLES, PLAN):
            (self.root / name).unlink(missing_ok=True)

    # ------------------------------------------------------------------ resume
    # ------------------------------------------------------------------ state
    @property
    def completed_rows(self) -> set[int]:
        """Row ids already in valid blocks (of this writer's view of the directory)."""
        return set(np.flatnonzero(self.completed_mask).tolist())

    def pending_rows(self) -> np.ndarray:
        """Sorted int64 row ids not yet in a valid block: the rows a resumed build still has to compute."""
        return np.flatnonzero(~self.completed_mask).astype(np.int64)

    def pending_blocks(self) -> list[int]:
        """Planned block ids without a valid block on disk, ascending (needs a plan)."""
        if self.plan is None:
            raise IndexError_(f"{self.root}: pending_blocks needs a batch plan")
        return [b for b in range(self.plan.num_blocks) if b not in self.completed_blocks]

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
            block_id: A non-negative id unique within the index (with a plan: a block of the plan).
            rows: int [n] row ids of the vectors, in ``0..num_rows-1`` (with a plan: the block's planned
                rows in planned order).
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
            raise IndexError_(
                f"{self.root}: block {block_id} vectors have shape {vectors.shape}, expected ({n}, {self.dim})"
            )
        if n and (rows.min() < 0 or rows.max() >= self.num_rows):
            raise IndexError_(f"{self.root}: block {block_id} has row ids outside 0..{self.num_rows - 1}")
        if np.unique(rows).shape[0] != n or self.completed_mask[rows].any():
            raise IndexError_(
                f"{self.root}: block {block_id} repeats row ids (within the block or from earlier blocks)"
            )
        if self.plan is not None and (
            block_id >= self.plan.num_blocks or not np.array_equal(rows, self.plan.block_rows(block_id))
        ):
            raise IndexError_(f"{self.root}: block {block_id} is not the batch plan's block {block_id} (rows differ)")
        for name, seq in (("tokens", tokens), ("masks", masks), ("meta", meta)):
            if seq is not None and len(seq) != n:
                raise IndexError_(f"{self.root}: block {block_id} has {len(seq)} {name} for {n} rows")
        if masks is not None and tokens is None:
            raise IndexError_(f"{self.root}: block {block_id} has masks but no tokens")
        if self.manifest["status"] == "complete":
            self.manifest["status"] = "building"
            save_json(self.root / MANIFEST, self.manifest)
        names = block_files(block_id)
        digests = {
            "vectors": save_npy(self.root / names["vectors"], vectors.astype(self.dtype, copy=False)),
            "rows": save_npy(self.root / names["rows"], rows),
        }
        if tokens is not None:
            toks = [np.asarray(t).reshape(-1) for t in tokens]
            flat = np.concatenate(toks) if toks else np.zeros(0, dtype=np.int64)
            small = flat.size == 0 or (flat.min() >= np.iinfo(np.int32).min and flat.max() <= np.iinfo(np.int32).max)
            offsets = np.concatenate([[0], np.cumsum([t.shape[0] for t in toks])]).astype(np.int64)
            digests["tokens"] = save_npy(self.root / names["tokens"], flat.astype(np.int32 if small else np.int64))
            digests["offsets"] = save_npy(self.root / names["offsets"], offsets)
            if masks is not None:
                ms = [np.asarray(m, dtype=bool).reshape(-1) for m in masks]
                if [m.shape[0] for m in ms] != [t.shape[0] for t in toks]:
                    raise IndexError_(f"{self.root}: block {block_id} masks and tokens differ in length")
                flat_m = np.concatenate(ms) if ms else np.zeros(0, dtype=bool)
                digests["masks"] = save_npy(self.root / names["masks"], flat_m)
        if meta is not None:
            text = "".join(json.dumps(jsonable(dict(m)), sort_keys=True) + "\n" for m in meta).encode()
            digests["meta"] = write_atomic(self.root / names["meta"], lambda fh: fh.write(text))
        save_json(self.root / marker_name(block_id), {"block": block_id, "rows": n, "files": digests})
        self.completed_blocks.add(block_id)
        self.completed_mask[rows] = True

    def finalize(self) -> SignatureIndex:
        """Check that every row is present exactly once, mark the manifest complete, and open the index.

        Reads every marker on disk, so blocks written by other writers (ranks) count too.
        """
        markers, data = scan(self.root)
        if data - markers:
            raise IndexError_(f"{self.root}: cannot finalize, blocks {sorted(data - markers)} have no marker")
        if self.plan is not None and markers != set(range(self.plan.num_blocks)):
            missing = sorted(set(range(self.plan.num_blocks)) - markers)
            raise IndexError_(
                f"{self.root}: cannot finalize, planned blocks {missing[:10]} are missing "
                f"and blocks {sorted(markers - set(range(self.plan.num_blocks)))[:10]} are not in the plan"
            )
        shards = []
        for block in sorted(markers):
            marker = read_marker(self.root, block, check_sums=False)
            shards.append({"block": block, "rows": marker["rows"], "files": marker["files"]})
        self.manifest["shards"] = shards
        stored = check_coverage(self.root, self.num_rows, {s["block"]: s["rows"] for s in shards})
        if self.plan is not None:
            for block, rows in stored.items():
                if not np.array_equal(rows, self.plan.block_rows(block)):
                    raise IndexError_(f"{self.root}: block {block} holds other rows than the batch plan's")
        self.manifest["status"] = "complete"
        self.manifest["finalized"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        save_json(self.root / MANIFEST, self.manifest)
        return SignatureIndex.open(self.root, verify="lazy")
