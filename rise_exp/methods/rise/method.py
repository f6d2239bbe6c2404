"""RISE as a :class:`VectorIndexMethod`: index the pool with Lightning, score queries by inner product.

Indexing is ``Trainer.predict`` over the planned batches (length-sorted, token-budgeted chunk batches
of the whole pool, stored with the index); an :class:`IndexPredictionWriter` writes each planned block
as it finishes, so ``trainer=ddp`` gives data-parallel indexing. An interrupted build resumes from its
complete blocks and writes the same bytes as an uninterrupted one. Lightning is imported by the build
only: answering queries from an index (:meth:`RiseMethod.query_vectors`) runs without it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from rise_exp.data.encoding import EncodedPool, EncodedRow, encode_record, encode_records
from rise_exp.data.records import Record
from rise_exp.methods.base import MethodContext
from rise_exp.methods.explanation import PairExplanation
from rise_exp.methods.rise.chunking import plan_batches
from rise_exp.methods.rise.config import RiseIndexConfig, RiseMethodConfig
from rise_exp.methods.rise.head import RiseHead
from rise_exp.methods.rise.signatures import compute_signatures
from rise_exp.methods.rise.sketch import SketchTables
from rise_exp.methods.rise.trunk import unembedding
from rise_exp.methods.vectors import PendingBlocks, VectorIndexMethod, stores_tokens

#: The head's arithmetic, part of an index's identity: 2 sums the residual sketch in float64 and drops
#: rounding-level token sketches (docs/numerics.md), so an index built by earlier code is rebuilt, never reused.
NUMERICS = 2


class RiseMethod(VectorIndexMethod):
    """RISE signatures of the LM-head gradient; influence = inner product of signatures."""

    name = "rise"

    def __init__(self, cfg: RiseMethodConfig, ctx: MethodContext) -> None:
        super().__init__(cfg, ctx)
        cfg = self.cfg
        self.rise = cfg.signature_config()
        self.dtype = cfg.dtype
        weight, _ = unembedding(ctx.model)
        self.sketch_tables = SketchTables.members(self.rise, vocab_size=weight.shape[0], hidden_size=weight.shape[1])
        self._dim = self.rise.ensemble * sum(self.rise.block_dims(weight.shape[0], weight.shape[1]).values())
        self._query_head: RiseHead | None = None
        self._query_head_key: tuple[Any, ...] | None = None

    @property
    def dim(self) -> int:
        return self._dim

    def encode(self, records: Sequence[Record], role: str) -> Sequence[EncodedRow]:
        # no truncation: long rows are chunked by the head; the pool is encoded lazily, batch by batch
        mask = self.masks_prompt(role)
        if role == "train":
            return EncodedPool(records, self.ctx.tokenizer, mask_prompt=mask, max_length=None)
        return encode_records(records, self.ctx.tokenizer, mask_prompt=mask, max_length=None)

    def identity(self) -> dict[str, Any]:
        return {**self.rise.to_dict(), "numerics": NUMERICS}

    def tables(self) -> Mapping[str, torch.Tensor]:
        """The sketch tables (ensemble member e > 0 under the prefix ``m<e>_``)."""
        out: dict[str, torch.Tensor] = {}
        for e, t in enumerate(self.sketch_tables):
            out.update({(k if e == 0 else f"m{e}_{k}"): v for k, v in t.state_dict().items()})
        return out

    def member_scale(self) -> float:
        """``E`` when signatures are normalised (each slice is over ``sqrt(E)``), else 1. Member ``e``'s slice
        of a signature is the single-sketch signature of its seed (same support)."""
        return float(self.rise.ensemble) if self.rise.normalize_signature else 1.0

    def index_settings(self) -> RiseIndexConfig:
        return self.cfg.index

    def plan_batches(self, rows: Sequence[EncodedRow]) -> list[list[int]]:
        ix = self.cfg.index
        return plan_batches(rows, self.rise, ix.batch_tokens, ix.batch_chunks, ix.pad_multiple)

    def plan_params(self) -> dict[str, Any]:
        ix = self.cfg.index
        return {"batch_tokens": ix.batch_tokens, "batch_chunks": ix.batch_chunks, "pad_multiple": ix.pad_multiple}

    def compute_blocks(self, work: PendingBlocks) -> None:
        from rise_exp.lightning.callbacks import PredictProgress
        from rise_exp.lightning.index_writer import IndexPredictionWriter
        from rise_exp.lightning.trainer_factory import make_trainer
        from rise_exp.methods.rise.indexing import RowIndexingModule, predict_loader

        ix = self.cfg.index
        rows = work.rows if stores_tokens(work.writer_args["num_rows"], ix.store_tokens) else None
        module = RowIndexingModule(self.ctx.model, self.rise, self.sketch_tables, rows, self.row_meta)
        writer = IndexPredictionWriter(work.path, blocks=work.blocks, **work.writer_args)
        progress = PredictProgress(work.num_rows, "rise index")
        trainer = make_trainer(self.ctx.trainer, root_dir=self.ctx.work_dir, callbacks=[writer, progress])
        pad, plan, blocks = self.ctx.tokenizer.pad_token_id, work.plan, work.blocks
        loader = predict_loader(work.rows, self.rise, pad, pad_multiple=ix.pad_multiple, plan=plan, blocks=blocks)
        trainer.predict(module, dataloaders=loader, return_predictions=False)

    def query_vectors(self, records: Sequence[Record]) -> np.ndarray:
        """Normalised RISE signatures of ``records`` (queries), float32 ``[n, dim]``."""
        return compute_signatures(
            self.ctx.model,
            self.ctx.tokenizer.pad_token_id,
            self.encode(records, "query"),
            self.rise,
            self.sketch_tables,
            batch_tokens=self.cfg.index.batch_tokens,
            batch_chunks=self.cfg.index.batch_chunks,
            pad_multiple=self.cfg.index.pad_multiple,
            head=self.query_head(),
        )

    def query_head(self) -> RiseHead:
        """The head that scores queries, built (and checked against the model's logits) once per weights and
        device: a session asking many query lists pays for neither again (the signatures are the same)."""
        weight, _ = unembedding(self.ctx.model)
        key = (weight.data_ptr(), weight.device, weight.dtype)
        if self._query_head is None or self._query_head_key != key:
            self._query_head = RiseHead.from_model(self.ctx.model, self.rise, self.sketch_tables)
            self._query_head_key = key
        return self._query_head

    def explain_unavailable(self) -> str | None:
        return None

    def explain(
        self, queries: Sequence[Record], rows: Sequence[Sequence[int]], pool: Sequence[Record] | None = None
    ) -> list[list[PairExplanation]]:
        """Exact query-token and row-token shares (:mod:`~rise_exp.methods.rise.explain`), the rows' factors
        recomputed from the tokens stored in the index (else from ``pool``)."""
        from rise_exp.methods.rise.explain import RiseExplainer

        explainer = RiseExplainer(self.ctx.model, self.rise, self.sketch_tables, self.ctx.tokenizer.pad_token_id)
        encoded = self.encode(queries, "query")
        return explainer.explain(self.ctx.tokenizer, encoded, rows, lambda i: self.stored_row(i, pool))

    def encode_row(self, record: Record, row: int) -> EncodedRow:
        return encode_record(record, self.ctx.tokenizer, row, mask_prompt=self.masks_prompt("train"), max_length=None)

    def value(self, targets: Sequence[Record], mode: str | None = None) -> np.ndarray:
        """Mean-query-signature valuation (``mean``) or reciprocal-rank fusion over queries (``rrf``)."""
        return super().value(targets, mode or self.cfg.valuation)
