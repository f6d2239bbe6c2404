"""The batch plan of an index build: which rows are computed together, and which batches form a block.

Vectors of batched methods depend, in their last bits, on which rows share a batch (padding, batched
matrix products). A build therefore plans its batches once, from the whole pool, and stores the plan
with the index (``plan.json``, referenced by the manifest). Block ``b`` holds the rows of planned
batches ``blocks[b][0] .. blocks[b][1] - 1`` in batch order; every build, every resume and every
data-parallel rank computes exactly these batches, so an interrupted or distributed build writes the
same bytes as a clean single-process one.

``plan.json``::

    {"format": 1, "params": {...what produced it...},
     "batches": [[row, ...], ...],          # row ids per batch, in compute order
     "blocks": [[first_batch, stop_batch], ...]}
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rise_exp.core.errors import IndexError_

PLAN = "plan.json"
PLAN_FORMAT = 1


def group_blocks(batch_sizes: Sequence[int], block_rows: int) -> list[tuple[int, int]]:
    """Consecutive batches grouped into blocks of at most ``block_rows`` rows (a larger batch: alone)."""
    blocks: list[tuple[int, int]] = []
    start, rows = 0, 0
    for i, n in enumerate(batch_sizes):
        if i > start and rows + n > block_rows:
            blocks.append((start, i))
            start, rows = i, 0
        rows += n
    if len(batch_sizes) > start:
        blocks.append((start, len(batch_sizes)))
    return blocks


@dataclass(frozen=True)
class BatchPlan:
    """Planned batches (row ids in compute order) and the blocks that group them.

    Attributes:
        batches: Row ids of each batch, in the order the batch is computed.
        blocks: ``(first batch, stop batch)`` of each block; blocks cover the batches in order.
        params: What produced the plan (e.g. ``batch_tokens``, ``block_rows``); informational.
    """

    batches: tuple[tuple[int, ...], ...]
    blocks: tuple[tuple[int, int], ...]
    params: dict[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def from_batches(
        cls, batches: Sequence[Sequence[int]], block_rows: int, params: Mapping[str, Any] | None = None
    ) -> BatchPlan:
        """Group ``batches`` into blocks of at most ``block_rows`` rows (whole batches only)."""
        batches_t = tuple(tuple(int(r) for r in b) for b in batches)
        blocks = group_blocks([len(b) for b in batches_t], int(block_rows))
        return cls(batches_t, tuple(blocks), {**(params or {}), "block_rows": int(block_rows)})

    @property
    def num_blocks(self) -> int:
        return len(self.blocks)

    def block_batches(self, block: int) -> tuple[tuple[int, ...], ...]:
        """The batches of one block, in compute order."""
        start, stop = self.blocks[block]
        return self.batches[start:stop]

    def block_rows(self, block: int) -> np.ndarray:
        """int64 row ids of one block, in the order they are stored."""
        return np.asarray([r for b in self.block_batches(block) for r in b], dtype=np.int64)

    def check(self, num_rows: int, where: str = "batch plan") -> None:
        """Raise IndexError_ unless the blocks cover the batches in order and rows ``0..num_rows-1`` appear once."""
        expect = 0
        for start, stop in self.blocks:
            if start != expect or stop <= start:
                raise IndexError_(f"{where}: blocks do not cover the batches in order (block at {start}..{stop})")
            expect = stop
        if expect != len(self.batches):
            raise IndexError_(f"{where}: blocks cover {expect} of {len(self.batches)} batches")
        rows = np.asarray([r for b in self.batches for r in b], dtype=np.int64)
        if rows.size != num_rows or not np.array_equal(np.sort(rows), np.arange(num_rows)):
            raise IndexError_(f"{where}: the batches do not hold rows 0..{num_rows - 1} exactly once")

    def to_json(self) -> bytes:
        """The canonical ``plan.json`` bytes."""
        obj = {
            "format": PLAN_FORMAT,
            "params": self.params,
            "batches": [list(b) for b in self.batches],
            "blocks": [list(b) for b in self.blocks],
        }
        return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.to_json()).hexdigest()

    @classmethod
    def from_json(cls, data: bytes, where: str = PLAN) -> BatchPlan:
        """Parse ``plan.json`` bytes; IndexError_ naming ``where`` when malformed."""
        try:
            obj = json.loads(data)
            if obj.get("format") != PLAN_FORMAT:
                raise ValueError(f"format {obj.get('format')!r}, expected {PLAN_FORMAT}")
            batches = tuple(tuple(int(r) for r in b) for b in obj["batches"])
            blocks = tuple((int(a), int(b)) for a, b in obj["blocks"])
            params = dict(obj.get("params") or {})
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise IndexError_(f"{where} is unreadable ({exc})") from None
        return cls(batches, blocks, params)

    def summary(self) -> dict[str, Any]:
        """The manifest's reference to the plan file."""
        return {
            "file": PLAN,
            "sha256": self.sha256,
            "batches": len(self.batches),
            "blocks": self.num_blocks,
            "params": self.params,
        }
