"""A Lightning prediction writer that streams per-row signatures into the planned blocks of an index."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.callbacks import BasePredictionWriter

from rise_exp.core.errors import DataError, IndexError_
from rise_exp.core.rss import release_free_memory
from rise_exp.index import IndexWriter, SignatureIndex
from rise_exp.lightning.sharding import rank_share

_EXTRAS = ("tokens", "masks", "meta")


def _numpy(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        return (x.float() if x.is_floating_point() else x).numpy()
    return np.asarray(x)


class IndexPredictionWriter(BasePredictionWriter):
    """Writes ``predict_step`` outputs into the blocks of an index's batch plan.

    ``predict_step`` must return a dict with ``rows`` (int ``[n]``) and ``signatures`` (float
    ``[n, dim]``), and optionally ``tokens`` and ``masks`` (n 1-D arrays/tensors each) and ``meta``
    (n dicts). Of the pending ``blocks`` (the same list on every rank) a rank writes every
    ``world``-th one (:func:`~rise_exp.lightning.sharding.rank_share`, the rule
    :class:`~rise_exp.lightning.data.BlockShardSampler` feeds it by), each as soon as all its rows
    have arrived, rows in planned order: blocks hold the same rows and bytes whatever the number of
    ranks. With ``finalize=True`` rank 0 seals the index after a barrier and exposes it as :attr:`index`.

    The index directory must have been opened for this build first (``IndexWriter(path, plan=...)``,
    which resumes and repairs it); this writer then follows the plan stored there. Pass
    ``return_predictions=False`` to ``Trainer.predict`` so the outputs are not also kept in memory.

    Args:
        path: Index directory.
        blocks: Block ids of the plan still to compute.
        finalize: Seal the index on rank 0 when prediction ends.
        writer_args: :class:`~rise_exp.index.IndexWriter` arguments of the build (``dim``,
            ``num_rows``, ``manifest``, ``plan``, ...); ``plan`` is required.
    """

    def __init__(
        self, path: str | os.PathLike, *, blocks: Sequence[int], finalize: bool = True, **writer_args: Any
    ) -> None:
        super().__init__(write_interval="batch")
        if writer_args.get("plan") is None:
            raise IndexError_("IndexPredictionWriter needs the build's batch plan (writer_args['plan'])")
        self.path = path
        self.blocks = sorted(int(b) for b in blocks)
        self.writer_args = dict(writer_args)
        self.finalize = finalize
        self.writer: IndexWriter | None = None
        self.index: SignatureIndex | None = None
        self._rank = 0
        self._expect: list[int] = []
        self._owner: dict[int, int] = {}
        self._buffer: dict[int, dict[str, Any]] = {}

    def on_predict_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Open the index writer (rank 0 first: it repairs the directory), then take this rank's blocks."""
        self._rank = trainer.global_rank
        if self._rank == 0:
            self.writer = IndexWriter(self.path, resume=True, clean_partial=True, **self.writer_args)
        trainer.strategy.barrier("rise_index_open")
        if self._rank != 0:
            self.writer = IndexWriter(self.path, resume=True, clean_partial=False, **self.writer_args)
        trainer.strategy.barrier("rise_index_opened")
        assert self.writer is not None and self.writer.plan is not None
        if self.writer.plan != self.writer_args["plan"]:
            raise IndexError_(f"{self.path}: the batch plan on disk is not the one this build was planned with")
        self._expect = [int(b) for b in rank_share(self.blocks, pad=False, rank=self._rank, world=trainer.world_size)]
        self._owner = {int(r): b for b in self._expect for r in self.writer.plan.block_rows(b)}
        self._buffer = {}

    def write_on_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        prediction: Any,
        batch_indices: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        """Buffer one batch of outputs and write every block whose rows have all arrived."""
        if not isinstance(prediction, Mapping) or "rows" not in prediction or "signatures" not in prediction:
            got = sorted(prediction) if isinstance(prediction, Mapping) else type(prediction).__name__
            raise DataError(f"predict_step must return a dict with 'rows' and 'signatures' for the index, got {got}")
        rows = _numpy(prediction["rows"]).astype(np.int64).reshape(-1)
        vecs = _numpy(prediction["signatures"]).astype(np.float32)
        dim = self.writer_args["dim"]
        if vecs.shape != (rows.shape[0], dim):
            raise DataError(f"predict_step signatures have shape {vecs.shape}, expected ({rows.shape[0]}, {dim})")
        # buffered in the storage dtype (the cast the block write would do): a float16 block buffer is half the size
        vecs = vecs.astype(self.writer.dtype if self.writer is not None else np.float32, copy=False)
        extras = {}
        for key in _EXTRAS:
            if key in prediction:
                items = [x if key == "meta" else _numpy(x) for x in prediction[key]]
                if len(items) != rows.shape[0]:
                    raise DataError(f"predict_step returned {len(items)} {key} for {rows.shape[0]} rows")
                extras[key] = items
        for i, row in enumerate(rows.tolist()):
            if row not in self._owner or row in self._buffer:
                raise DataError(f"predict_step returned row {row}, which is not (or no longer) due on this rank")
            self._buffer[row] = {"vec": vecs[i], **{k: v[i] for k, v in extras.items()}}
        self._write_ready()

    def _write_ready(self) -> None:
        if self.writer is None or self.writer.plan is None:
            raise RuntimeError("IndexPredictionWriter used outside Trainer.predict")
        while self._expect:
            block = self._expect[0]
            rows = self.writer.plan.block_rows(block)
            if not all(int(r) in self._buffer for r in rows):
                return
            items = [self._buffer.pop(int(r)) for r in rows]
            extras: dict[str, list[Any] | None] = {}
            for key in _EXTRAS:
                have = sum(key in it for it in items)
                if have not in (0, len(items)):
                    raise DataError(f"predict_step returned {key!r} for some rows of block {block} but not others")
                extras[key] = [it[key] for it in items] if have else None
            vecs = np.stack([it["vec"] for it in items]) if items else np.zeros((0, self.writer_args["dim"]))
            self.writer.write_block(block, rows, vecs, **extras)
            self._expect.pop(0)
            del items, vecs
            release_free_memory()  # memory stays flat over a long build (see rise_exp.core.rss)

    def on_predict_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Check this rank wrote all its blocks, then (rank 0, after a barrier) finalize the index."""
        error: Exception | None = None
        if self._expect:
            error = IndexError_(f"{self.path}: rank {self._rank} never received every row of blocks {self._expect}")
        trainer.strategy.barrier("rise_index_flushed")
        if error is None and self.finalize and self._rank == 0:
            assert self.writer is not None
            try:
                self.index = self.writer.finalize()
            except Exception as exc:  # re-raised after the barrier so other ranks are not left waiting
                error = exc
        trainer.strategy.barrier("rise_index_finalized")
        if error is not None:
            raise error
