"""Running RISE over encoded rows: a Lightning predict module and a plain function.

Batches are built by :func:`~rise_exp.methods.rise.chunking.chunk_batches`: each element of a
collated batch is one chunk whose ``row`` entry is the row it belongs to, and all chunks of a row
sit in the same batch. ``predict_step`` therefore finishes every row it sees and returns one
signature per row; under DDP each rank handles whole rows and no cross-rank reduction is needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

from rise_exp.data.encoding import EncodedRow, collate
from rise_exp.errors import DataError
from rise_exp.lightning.data import RankShardSampler
from rise_exp.methods.rise.chunking import chunk_batches, mean_by_row
from rise_exp.methods.rise.config import RiseConfig
from rise_exp.methods.rise.head import RiseHead
from rise_exp.methods.rise.sketch import SketchTables
from rise_exp.methods.rise.trunk import hidden_states

DEFAULT_BATCH_TOKENS = 8192


@torch.inference_mode()
def batch_signatures(model: Any, head: RiseHead, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Row signatures of one collated batch of chunks: ``{"rows": [m], "signatures": [m, dim]}``.

    Verifies the head against the model's logits on the first call.

    Raises:
        DataError: if a row of the batch has no target token in any of its chunks.
    """
    dev = head.weight.device
    ids = batch["input_ids"].to(dev)
    att = batch["attention_mask"].to(dev)
    tgt = batch["target_mask"].to(dev) & att.bool()
    if not head.verified:
        head.verify(model, ids, att)
    sigs, counts = head.chunk_signatures(hidden_states(model, ids, att), ids, tgt)
    chunk_rows = batch["row"].to(dev)
    has = counts > 0
    rows, out = mean_by_row(sigs[has], chunk_rows[has], normalize=False)
    if head.cfg.normalize_signature:
        out = head.normalize(out)
    lost = set(chunk_rows.tolist()) - set(rows.tolist())
    if lost:
        raise DataError(f"row(s) {sorted(lost)} have no target tokens (empty text, or only prompt after masking)")
    return {"rows": rows, "signatures": out.float()}


class _Batches(torch.utils.data.Dataset):
    def __init__(self, batches: list[list[EncodedRow]], pad_id: int) -> None:
        self.batches, self.pad_id = batches, pad_id

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return collate(self.batches[i], self.pad_id)


def predict_loader(
    rows: Sequence[EncodedRow], cfg: RiseConfig, pad_id: int, batch_tokens: int = DEFAULT_BATCH_TOKENS, **kwargs: Any
) -> DataLoader:
    """A DataLoader of collated chunk batches for :class:`RiseIndexingModule` (``batch_size=None``).

    Under DDP each rank takes every ``world``-th batch (Lightning's sampler replacement is off).
    """
    batches = _Batches(chunk_batches(rows, cfg, batch_tokens), pad_id)
    kwargs.setdefault("sampler", RankShardSampler(len(batches)))
    return DataLoader(batches, batch_size=None, **kwargs)


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
        return batch_signatures(self.model, self.head, batch)


def compute_signatures(
    model: Any,
    tokenizer_pad_id: int,
    rows: Sequence[EncodedRow],
    cfg: RiseConfig,
    tables: SketchTables | Sequence[SketchTables] | None = None,
    *,
    batch_tokens: int = DEFAULT_BATCH_TOKENS,
    head: RiseHead | None = None,
) -> np.ndarray:
    """Row signatures without Lightning, float32 ``[len(rows), dim]`` in the order of ``rows``.

    Raises:
        DataError: on duplicate row ids or a row without targets.
    """
    ids = [r.row for r in rows]
    if len(set(ids)) != len(ids):
        raise DataError("compute_signatures needs distinct EncodedRow.row ids")
    head = head or RiseHead.from_model(model, cfg, tables)
    where = {rid: i for i, rid in enumerate(ids)}
    out = np.zeros((len(rows), head.dim), dtype=np.float32)
    was_training = model.training
    model.eval()
    try:
        for chunks in chunk_batches(rows, cfg, batch_tokens):
            res = batch_signatures(model, head, collate(chunks, tokenizer_pad_id))
            pos = [where[int(r)] for r in res["rows"].tolist()]
            out[pos] = res["signatures"].cpu().numpy()
    finally:
        model.train(was_training)
    return out
