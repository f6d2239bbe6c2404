"""Resuming an index build: identity check, plan adoption, and the repairs said out loud.

:class:`ResumeMixin` is the resume half of :class:`~rise_exp.index.writer.IndexWriter`: it refuses a
build whose identity differs, follows the stored batch plan (restoring a damaged plan file when it
equals the build's own), restores foreign or damaged sketch tables from the build's own, keeps every
valid block and deletes the others. Every repair is logged as a warning naming the block (or file)
and the reason, and recorded in ``repairs``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rise_exp.core.errors import IndexError_
from rise_exp.core.files import save_json, write_atomic
from rise_exp.index.files import (
    INFO_KEYS,
    MANIFEST,
    TABLES,
    block_files,
    delete_block,
    load_rows,
    manifest_diff,
    marker_name,
    read_marker,
    scan,
    sha256,
    tables_sha256,
)
from rise_exp.index.plan import PLAN, BatchPlan

log = logging.getLogger("rise_exp.index")


class ResumeMixin:
    """Resume checks and repairs of an :class:`~rise_exp.index.writer.IndexWriter` (uses its attributes)."""

    root: Path
    num_rows: int
    dim: int
    dtype: str
    tables: dict[str, torch.Tensor]
    plan: BatchPlan | None
    manifest: dict[str, Any]
    completed_blocks: set[int]
    completed_mask: np.ndarray
    repairs: list[str]
    clean: bool
    rebuild_hint: str

    def _repair(self, what: str) -> None:
        """Log (rank 0 only) and record a repair."""
        self.repairs.append(what)
        if self.clean:
            log.warning("index %s: %s", self.root, what)

    def _resume(self) -> None:
        try:
            old = json.loads((self.root / MANIFEST).read_text())
            if not isinstance(old, dict):
                raise ValueError("not a JSON object")
        except ValueError as exc:
            raise IndexError_(f"{self.root / MANIFEST} is unreadable ({exc}); {self.rebuild_hint}") from None
        ignore = {"status", "block_rows", "created", "finalized", "shards", "plan", *INFO_KEYS}
        keys = sorted((set(old) | set(self.manifest)) - ignore)
        diff = manifest_diff(old, self.manifest, keys)
        if diff:
            raise IndexError_(
                f"refusing to resume index {self.root}: the build differs from the one on disk in "
                + "; ".join(diff)
                + f". To start over, {self.rebuild_hint}."
            )
        self.manifest["created"] = old.get("created", self.manifest["created"])
        self.manifest["status"] = old.get("status", "building")
        trusted = self._adopt_plan(old.get("plan"))
        self._check_tables()
        markers, data = scan(self.root)
        repaired = False
        for block in sorted(markers | data):
            problem = "the batch plan was replaced" if not trusted else self._block_problem(block)
            if problem is None:
                if self.clean:  # leftovers of an interrupted rewrite of a valid block
                    for name in [marker_name(block), *block_files(block).values()]:
                        (self.root / (name + ".tmp")).unlink(missing_ok=True)
                rows = load_rows(self.root, block, read_marker(self.root, block, check_sums=False)["rows"])
                self.completed_blocks.add(block)
                self.completed_mask[rows] = True
                continue
            planned = self.plan is None or block < self.plan.num_blocks
            self._repair(f"block {block} is {'recomputed' if planned else 'deleted'}: {problem}")
            repaired = True
            if self.clean:
                delete_block(self.root, block)
        if not repaired:  # a repaired block reopens the build anyway
            self._check_shards(old)

    def _check_shards(self, old: Mapping[str, Any]) -> None:
        """A complete manifest must list exactly the valid blocks; otherwise it is sealed again."""
        if self.manifest["status"] != "complete":
            return
        shards = []
        for block in sorted(self.completed_blocks):
            marker = read_marker(self.root, block, check_sums=False)
            shards.append({"block": block, "rows": marker["rows"], "files": marker["files"]})
        if old.get("shards") != shards:
            self._repair(f"{MANIFEST} lists other shards than the valid blocks; it is sealed again")
            self.manifest["status"] = "building"
            if self.clean:
                save_json(self.root / MANIFEST, self.manifest)

    def _adopt_plan(self, ref: Any) -> bool:
        """Follow the stored plan; restore or replace a missing or damaged one. False: blocks untrusted."""
        self.manifest.pop("plan", None)  # the manifest on disk decides until a plan is (re)written
        if isinstance(ref, Mapping):
            self.manifest["plan"] = dict(ref)
        if ref is None:
            if self.plan is None:
                return True
            self._repair("the stored build has no batch plan; every block is recomputed")
            self._save_plan()
            return False
        problem = None
        try:
            data = (self.root / PLAN).read_bytes()
            if not isinstance(ref, Mapping) or sha256(self.root / PLAN) != ref.get("sha256"):
                problem = f"{PLAN} fails its sha256 checksum in {MANIFEST}"
            else:
                stored = BatchPlan.from_json(data, str(self.root / PLAN))
                stored.check(self.num_rows, str(self.root / PLAN))
                self.plan = stored
                return True
        except FileNotFoundError:
            problem = f"{PLAN} is missing"
        except IndexError_ as exc:
            problem = str(exc)
        if self.plan is None:
            raise IndexError_(f"{self.root}: {problem}; {self.rebuild_hint}")
        if isinstance(ref, Mapping) and ref.get("sha256") == self.plan.sha256:
            self._repair(f"{problem}; restored from this build's identical plan")
            self._save_plan()
            return True
        self._repair(f"{problem}; its blocks cannot be placed, every block is recomputed")
        self._save_plan()
        return False

    def _save_plan(self) -> None:
        """Write this build's plan; a manifest that referenced another plan is reopened (sealed again later)."""
        if self.plan is None:
            return
        if self.clean:
            write_atomic(self.root / PLAN, lambda fh: fh.write(self.plan.to_json()))
        if self.manifest.get("plan") != self.plan.summary():
            self.manifest["plan"] = self.plan.summary()
            self.manifest["status"] = "building"
            if self.clean:
                save_json(self.root / MANIFEST, self.manifest)

    def _check_tables(self) -> None:
        expected = self.manifest["tables_sha256"]
        if expected is None:
            return
        try:
            from safetensors.torch import load_file

            ok = tables_sha256(load_file(str(self.root / TABLES))) == expected
            problem = f"{TABLES} does not match its checksum in {MANIFEST} (foreign or damaged tables)"
        except FileNotFoundError:
            ok, problem = False, f"{TABLES} is missing"
        except Exception as exc:  # safetensors raises its own error types for damaged files
            ok, problem = False, f"{TABLES} is unreadable ({type(exc).__name__})"
        if not ok:
            self._repair(f"{problem}; restored from this build's tables")
            if self.clean:
                from safetensors.torch import save_file

                save_file(self.tables, str(self.root / TABLES))

    def _block_problem(self, block: int) -> str | None:
        """Why a block on disk is not a valid block of this build, or None."""
        if self.plan is not None and block >= self.plan.num_blocks:
            return f"block {block} is not in the batch plan ({self.plan.num_blocks} blocks)"
        try:
            marker = read_marker(self.root, block, check_sums=True, vectors=(self.dim, self.dtype))
            rows = load_rows(self.root, block, marker["rows"])
        except IndexError_ as exc:
            return str(exc).removeprefix(f"{self.root}: ")
        if self.plan is not None:
            if not np.array_equal(rows, self.plan.block_rows(block)):
                return f"block {block} holds other rows than the batch plan's"
        if rows.size and (rows.min() < 0 or rows.max() >= self.num_rows or self.completed_mask[rows].any()):
            return f"block {block} repeats rows of another block or has rows outside 0..{self.num_rows - 1}"
        return None
