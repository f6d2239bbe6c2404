"""Running RISE over the planned batches of an index build: a Lightning predict module and its loader (the
plain functions, :func:`batch_signatures` and :func:`compute_signatures`, live in :mod:`.signatures`).

Batches follow a batch plan (:func:`~rise_exp.methods.rise.chunking.plan_batches`, stored with the
index as a :class:`~rise_exp.index.BatchPlan`): each element of a collated batch is one chunk whose
``row`` entry is the row it belongs to, and all chunks of a row sit in the same batch.
``predict_step`` therefore finishes every row it sees and returns one signature per row; under DDP
each rank computes whole planned blocks and no cross-rank reduction is needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader

from rise_exp.data.encoding import EncodedPool, EncodedRow
from rise_exp.index.plan import BatchPlan
from rise_exp.lightning.data import EMPTY_BATCH, BlockShardSampler
from rise_exp.methods.rise.chunking import chunks_of_batch, collate_chunks, plan_batches
from rise_exp.methods.rise.config import DEFAULT_BATCH_CHUNKS, DEFAULT_BATCH_TOKENS, DEFAULT_PAD_MULTIPLE, RiseConfig
from rise_exp.methods.rise.head import RiseHead
from rise_exp.methods.rise.signatures import batch_signatures
from rise_exp.methods.rise.sketch import SketchTables


class _Batches(torch.utils.data.Dataset):
    """Planned batches of row ids, chunked and collated on access; :data:`EMPTY_BATCH` is an empty batch."""

    def __init__(
        self, rows: Sequence[EncodedRow], batches: list[Sequence[int]], cfg: RiseConfig, pad_id: int, pad_multiple: int
    ) -> None:
        # an EncodedPool is positional (pool[i].row == i) and encodes on access; a list is indexed by row id
        self.by_id = rows if isinstance(rows, EncodedPool) else {r.row: r for r in rows}
        self.batches, self.cfg, self.pad_id, self.pad_multiple = batches, cfg, pad_id, pad_multiple

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        if i == EMPTY_BATCH:
            empty = torch.zeros((0, 1), dtype=torch.long)
            return {"input_ids": empty, "attention_mask": empty, "target_mask": empty.bool(), "row": empty[:, 0]}
        return collate_chunks(
            chunks_of_batch(self.by_id, self.batches[i], self.cfg), self.cfg, self.pad_id, self.pad_multiple
        )


def predict_loader(
    rows: Sequence[EncodedRow],
    cfg: RiseConfig,
    pad_id: int,
    batch_tokens: int = DEFAULT_BATCH_TOKENS,
    *,
    batch_chunks: int | None = DEFAULT_BATCH_CHUNKS,
    pad_multiple: int = DEFAULT_PAD_MULTIPLE,
    plan: BatchPlan | None = None,
    blocks: Sequence[int] | None = None,
    **kwargs: Any,
) -> DataLoader:
    """A DataLoader of collated chunk batches for :class:`RiseIndexingModule` (``batch_size=None``).

    With a ``plan``, the batches of its ``blocks`` (default: all) in planned order; without one, the
    batches of :func:`plan_batches` (``batch_tokens``, ``batch_chunks``, ``pad_multiple``), each its own
    block; batches are padded to their planned length. Under DDP each rank takes
    every ``world``-th block (Lightning's sampler replacement is off).
    """
    if plan is None:
        plan = BatchPlan.from_batches(plan_batches(rows, cfg, batch_tokens, batch_chunks, pad_multiple), block_rows=1)
    batches: list[Sequence[int]] = []
    groups: list[list[int]] = []
    for b in range(plan.num_blocks) if blocks is None else sorted(blocks):
        groups.append(list(range(len(batches), len(batches) + len(plan.block_batches(b)))))
        batches.extend(plan.block_batches(b))
    kwargs.setdefault("sampler", BlockShardSampler(groups))
    return DataLoader(_Batches(rows, batches, cfg, pad_id, pad_multiple), batch_size=None, **kwargs)


class RiseIndexingModule(L.LightningModule):
    """Wraps an HF causal LM and the RISE head for ``Trainer.predict``.

    Args:
        model: The HF causal LM (put in eval mode).
        cfg: RISE settings.
        tables: CountSketch tables (drawn from ``cfg.seed`` when omitted; pass the index's own).
    """

    def __init__(
        self, model: Any, cfg: RiseConfig, tables: SketchTables | Sequence[SketchTables] | None = None
    ) -> None:
        super().__init__()
        self.model = model.eval()
        self.cfg = cfg
        self._tables = tables
        self._head: RiseHead | None = None

    @property
    def head(self) -> RiseHead:
        """The head, built on the model's current device at first use."""
        w = self.model.get_output_embeddings().weight
        if self._head is None or self._head.weight.device != w.device:
            self._head = RiseHead.from_model(self.model, self.cfg, self._tables)
        return self._head

    def predict_step(self, batch: dict[str, torch.Tensor], batch_idx: int = 0) -> dict[str, torch.Tensor]:
        """``{"rows": LongTensor[m], "signatures": FloatTensor[m, dim]}`` for the rows of ``batch``."""
        if batch["row"].numel() == 0:  # a rank without blocks
            return {"rows": batch["row"], "signatures": torch.zeros((0, self.head.dim))}
        return batch_signatures(self.model, self.head, batch)


class RowIndexingModule(RiseIndexingModule):
    """Adds each row's metadata (id, text preview) and, optionally, its token ids and target mask."""

    def __init__(
        self,
        model: Any,
        cfg: Any,
        tables: Sequence[SketchTables],
        rows: Sequence[EncodedRow] | None,
        meta: Sequence[dict[str, Any]],
    ) -> None:
        super().__init__(model, cfg, tables)
        self._rows, self._meta = rows, meta  # both positional (row id = position)

    def predict_step(self, batch: dict[str, torch.Tensor], batch_idx: int = 0) -> dict[str, Any]:
        out = super().predict_step(batch, batch_idx)
        out["meta"] = [self._meta[int(r)] for r in out["rows"]]
        if self._rows is not None:
            rows = [self._rows[int(r)] for r in out["rows"]]
            out["tokens"] = [r.input_ids for r in rows]
            out["masks"] = [r.target_mask for r in rows]
        return out
