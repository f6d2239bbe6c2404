"""RISE as an :class:`AttributionMethod`: index the pool with Lightning, score queries by inner product.

Indexing is ``Trainer.predict`` over length-sorted, token-budgeted chunk batches; an
:class:`IndexPredictionWriter` writes index blocks as they finish, so ``trainer=ddp`` gives
data-parallel indexing. An interrupted build resumes from its last complete block.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rise_exp.data.encoding import EncodedRow, encode_records
from rise_exp.data.records import Record
from rise_exp.errors import ConfigError
from rise_exp.index import IndexWriter, SignatureIndex
from rise_exp.lightning.index_writer import IndexPredictionWriter
from rise_exp.lightning.trainer import make_trainer
from rise_exp.methods.base import AttributionMethod, MethodContext
from rise_exp.methods.rise.config import RiseConfig
from rise_exp.methods.rise.module import RiseIndexingModule, compute_signatures, predict_loader
from rise_exp.methods.rise.sketch import SketchTables
from rise_exp.methods.rise.trunk import unembedding
from rise_exp.search import all_scores
from rise_exp.valuation import fuse_scores, value_against_index

log = logging.getLogger(__name__)

METHOD_KEYS = ("name", "needs_model", "index", "valuation", "mask_train_prompt", "mask_query_prompt")
INDEX_DEFAULTS: dict[str, Any] = {"batch_tokens": 8192, "block_rows": 4096, "store_tokens": "auto", "reuse": True,
                                  "dir": None}
STORE_TOKENS_MAX_ROWS = 100_000


def split_config(cfg: Mapping[str, Any]) -> tuple[RiseConfig, dict[str, Any]]:
    """The signature settings (:class:`RiseConfig`) and the indexing settings of a ``method=rise`` node."""
    d = dict(cfg)
    index = {**INDEX_DEFAULTS, **dict(d.get("index") or {})}
    unknown = sorted(set(index) - set(INDEX_DEFAULTS))
    if unknown:
        raise ConfigError(f"unknown method.index setting(s) {unknown}; allowed: {sorted(INDEX_DEFAULTS)}")
    return RiseConfig.from_dict({k: v for k, v in d.items() if k not in METHOD_KEYS}), index


def rows_hash(rows: Sequence[EncodedRow]) -> str:
    """Hash of the exact token ids and target masks an index is computed from."""
    h = hashlib.sha256()
    for r in rows:
        h.update(r.input_ids.tobytes())
        h.update(np.packbits(r.target_mask).tobytes())
        h.update(b"|")
    return h.hexdigest()[:16]


class _IndexingModule(RiseIndexingModule):
    """Adds each row's id (row metadata) and, optionally, its token ids and target mask (recompute data)."""

    def __init__(self, model: Any, cfg: RiseConfig, tables: SketchTables, rows: dict[int, EncodedRow] | None,
                 ids: Sequence[str]) -> None:
        super().__init__(model, cfg, tables)
        self._rows, self._ids = rows, list(ids)

    def predict_step(self, batch: dict[str, torch.Tensor], batch_idx: int = 0) -> dict[str, Any]:
        out = super().predict_step(batch, batch_idx)
        out["meta"] = [{"id": self._ids[int(r)]} for r in out["rows"]]
        if self._rows is not None:
            rows = [self._rows[int(r)] for r in out["rows"]]
            out["tokens"] = [r.input_ids for r in rows]
            out["masks"] = [r.target_mask for r in rows]
        return out


class RiseMethod(AttributionMethod):
    """RISE signatures of the LM-head gradient; influence = inner product of signatures."""

    name = "rise"

    def __init__(self, cfg: Any, ctx: MethodContext) -> None:
        super().__init__(cfg, ctx)
        self.rise, self.index_cfg = split_config(cfg)
        self.valuation = str(dict(cfg).get("valuation", "mean"))
        # Which tokens count: the run's protocol setting (ctx.mask_prompt) unless overridden here.
        d = dict(cfg)
        self.mask_train_prompt = ctx.mask_prompt if d.get("mask_train_prompt") is None else bool(d["mask_train_prompt"])
        self.mask_query_prompt = ctx.mask_prompt if d.get("mask_query_prompt") is None else bool(d["mask_query_prompt"])
        self.index: SignatureIndex | None = None
        weight, _ = unembedding(ctx.model)
        self.tables = SketchTables.create(self.rise, vocab_size=weight.shape[0], hidden_size=weight.shape[1])

    def _encode(self, records: Sequence[Record], mask_prompt: bool) -> list[EncodedRow]:
        # no truncation: long rows are chunked by the head
        return encode_records(records, self.ctx.tokenizer, mask_prompt=mask_prompt, max_length=None)

    def index_dir(self) -> Path:
        return Path(self.index_cfg["dir"] or (self.ctx.work_dir / "rise_index"))

    def build(self, train: Sequence[Record]) -> None:
        rows = self._encode(train, self.mask_train_prompt)
        store = self.index_cfg["store_tokens"]
        store_tokens = len(rows) < STORE_TOKENS_MAX_ROWS if store == "auto" else bool(store)
        manifest = {"method": {"name": "rise", **self.rise.to_dict()}, "model": self.ctx.model_id,
                    "data_hash": rows_hash(rows)}
        path = self.index_dir()
        dim = self.rise.signature_dim
        writer_args = dict(dim=dim, num_rows=len(rows), manifest=manifest, tables=self.tables.state_dict(),
                           dtype=self.rise.dtype, block_rows=int(self.index_cfg["block_rows"]))
        reuse = bool(self.index_cfg["reuse"])
        pending = IndexWriter(path, resume=reuse, **writer_args).pending_rows() if reuse else np.arange(len(rows))
        if len(pending):
            log.info("RISE: indexing %d of %d rows into %s", len(pending), len(rows), path)
            todo = [rows[i] for i in pending]
            module = _IndexingModule(self.ctx.model, self.rise, self.tables,
                                     {r.row: r for r in todo} if store_tokens else None, [r.id for r in train])
            writer = IndexPredictionWriter(path, resume=True, **writer_args)
            trainer = make_trainer(self.ctx.trainer, root_dir=self.ctx.work_dir, callbacks=[writer])
            loader = predict_loader(todo, self.rise, self.ctx.tokenizer.pad_token_id,
                                    batch_tokens=int(self.index_cfg["batch_tokens"]))
            trainer.predict(module, dataloaders=loader, return_predictions=False)
        elif not (path / "manifest.json").exists() or '"complete"' not in (path / "manifest.json").read_text():
            IndexWriter(path, resume=True, **writer_args).finalize()
        self.index = SignatureIndex.open(path)
        self.index_bytes = int(self.index.nbytes)

    def signatures(self, records: Sequence[Record]) -> np.ndarray:
        """Normalised RISE signatures of ``records`` (queries), float32 ``[n, dim]``."""
        return compute_signatures(self.ctx.model, self.ctx.tokenizer.pad_token_id, self._encode(records, self.mask_query_prompt), self.rise,
                                  self.tables, batch_tokens=int(self.index_cfg["batch_tokens"]))

    def _require_index(self) -> SignatureIndex:
        if self.index is None:
            raise RuntimeError("RiseMethod.build must run before scoring")
        return self.index

    def score(self, queries: Sequence[Record]) -> np.ndarray:
        return all_scores(self._require_index(), self.signatures(queries))

    def value(self, targets: Sequence[Record], mode: str | None = None) -> np.ndarray:
        """Mean-query-signature valuation (``mean``) or reciprocal-rank fusion over queries (``rrf``)."""
        mode = mode or self.valuation
        if mode == "mean":
            return value_against_index(self._require_index(), self.signatures(targets), "mean")
        return fuse_scores(self.score(targets), mode=mode)
