"""RISE signatures of encoded rows without Lightning: one collated batch, or a list of rows (queries).

The index build runs the same :func:`batch_signatures` inside Lightning (:mod:`.indexing`); answering
queries (``stage=query``, :class:`~rise_exp.run.index_session.IndexSession`) needs only this module, so
it never imports Lightning.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from rise_exp.core.errors import DataError
from rise_exp.data.encoding import EncodedRow
from rise_exp.methods.rise.chunking import chunk_batches, collate_chunks, mean_by_row
from rise_exp.methods.rise.config import DEFAULT_BATCH_CHUNKS, DEFAULT_BATCH_TOKENS, DEFAULT_PAD_MULTIPLE, RiseConfig
from rise_exp.methods.rise.head import RiseHead
from rise_exp.methods.rise.sketch import SketchTables
from rise_exp.methods.rise.trunk import hidden_states
from rise_exp.models.placement import full_precision


@torch.inference_mode()
def batch_signatures(model: Any, head: RiseHead, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Row signatures of one collated batch of chunks: ``{"rows": [m], "signatures": [m, dim]}``.

    Verifies the head against the model's logits on the first call. The trunk runs
    under the caller's autocast (``trainer.precision=bf16-mixed``); the head, its support and sketches always
    compute in float32 or wider (:func:`~rise_exp.models.placement.full_precision`).

    Raises:
        DataError: if a row of the batch has no target token in any of its chunks.
    """
    dev = head.weight.device
    ids = batch["input_ids"].to(dev)
    att = batch["attention_mask"].to(dev)
    tgt = batch["target_mask"].to(dev) & att.bool()
    if not head.verified:
        head.verify(model, ids, att)
    hidden = hidden_states(model, ids, att).to(dev)  # with model.device_map the last block may sit elsewhere
    with full_precision(dev):
        sigs, counts = head.chunk_signatures(hidden, ids, tgt)
    chunk_rows = batch["row"].to(dev)
    has = counts > 0
    rows, out = mean_by_row(sigs[has], chunk_rows[has], normalize=False)
    if head.cfg.normalize_signature:
        out = head.normalize(out)
    lost = set(chunk_rows.tolist()) - set(rows.tolist())
    if lost:
        raise DataError(f"row(s) {sorted(lost)} have no target tokens (empty text, or only prompt after masking)")
    return {"rows": rows, "signatures": out.float()}


def compute_signatures(
    model: Any,
    tokenizer_pad_id: int,
    rows: Sequence[EncodedRow],
    cfg: RiseConfig,
    tables: SketchTables | Sequence[SketchTables] | None = None,
    *,
    batch_tokens: int = DEFAULT_BATCH_TOKENS,
    batch_chunks: int | None = DEFAULT_BATCH_CHUNKS,
    pad_multiple: int = DEFAULT_PAD_MULTIPLE,
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
        for chunks in chunk_batches(rows, cfg, batch_tokens, batch_chunks, pad_multiple):
            res = batch_signatures(model, head, collate_chunks(chunks, cfg, tokenizer_pad_id, pad_multiple))
            pos = [where[int(r)] for r in res["rows"].tolist()]
            out[pos] = res["signatures"].cpu().numpy()
    finally:
        model.train(was_training)
    return out
