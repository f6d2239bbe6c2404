"""A Lightning prediction writer that streams per-row signatures into an on-disk index."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.callbacks import BasePredictionWriter

from rise_exp.errors import ConfigError, DataError
from rise_exp.index import IndexWriter, SignatureIndex


def _numpy(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        return (x.float() if x.is_floating_point() else x).numpy()
    return np.asarray(x)


class IndexPredictionWriter(BasePredictionWriter):
    """Buffers ``predict_step`` outputs and writes them to an index, one block per ``block_rows`` rows.

    ``predict_step`` must return a dict with ``rows`` (int ``[n]``) and ``signatures`` (float
    ``[n, dim]``), and optionally ``tokens`` and ``masks`` (n 1-D arrays/tensors each) and ``meta``
    (n dicts). Each rank writes block ids ``counter * world_size + rank`` (skipping ids already on
    disk), so ranks never collide. After the last batch every rank flushes its rest; with
    ``finalize=True`` rank 0 then seals the index after a barrier and exposes it as :attr:`index`.

    To resume an interrupted build, open ``IndexWriter(path, ...)`` with the same arguments first,
    predict only its ``pending_rows()``, and keep ``resume=True`` here. Pass
    ``return_predictions=False`` to ``Trainer.predict`` so the outputs are not also kept in memory.

    Args:
        path: Index directory.
        dim: Signature dimension.
        num_rows: Rows of the finished index.
        manifest: Build identity (method config, model identity, data hash), see :class:`IndexWriter`.
        tables: Sketch tables to store with the index.
        dtype: Vector storage dtype.
        block_rows: Rows per written block.
        resume: Keep the valid blocks of an identical earlier build.
        finalize: Seal the index on rank 0 when prediction ends.
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
        block_rows: int = 4096,
        resume: bool = True,
        finalize: bool = True,
    ) -> None:
        super().__init__(write_interval="batch")
        if int(block_rows) < 1:
            raise ConfigError(f"index block_rows must be >= 1, got {block_rows}")
        self.path = path
        self.writer_args: dict[str, Any] = dict(
            dim=dim, num_rows=num_rows, manifest=dict(manifest), tables=tables, dtype=dtype, block_rows=int(block_rows)
        )
        self.block_rows = int(block_rows)
        self.resume = resume
        self.finalize = finalize
        self.writer: IndexWriter | None = None
        self.index: SignatureIndex | None = None
        self._rank, self._world, self._counter = 0, 1, 0
        self._reset_buffer()

    def _reset_buffer(self) -> None:
        self._rows: list[np.ndarray] = []
        self._vecs: list[np.ndarray] = []
        self._tokens: list[np.ndarray] | None = None
        self._masks: list[np.ndarray] | None = None
        self._meta: list[dict[str, Any]] | None = None
        self._buffered = 0
        self._batches = 0

    def on_predict_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Open the index writer: rank 0 first (it creates or cleans the directory), then the rest."""
        self._rank, self._world, self._counter = trainer.global_rank, trainer.world_size, 0
        self._reset_buffer()
        if self._rank == 0:
            self.writer = IndexWriter(self.path, resume=self.resume, clean_partial=True, **self.writer_args)
        trainer.strategy.barrier("rise_index_open")
        if self._rank != 0:
            self.writer = IndexWriter(self.path, resume=True, clean_partial=False, **self.writer_args)
        trainer.strategy.barrier("rise_index_opened")

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
        """Buffer one batch of outputs and write every full block."""
        if not isinstance(prediction, Mapping) or "rows" not in prediction or "signatures" not in prediction:
            got = sorted(prediction) if isinstance(prediction, Mapping) else type(prediction).__name__
            raise DataError(f"predict_step must return a dict with 'rows' and 'signatures' for the index, got {got}")
        rows = _numpy(prediction["rows"]).astype(np.int64).reshape(-1)
        vecs = _numpy(prediction["signatures"]).astype(np.float32)
        if vecs.shape != (rows.shape[0], self.writer_args["dim"]):
            raise DataError(
                f"predict_step signatures have shape {vecs.shape}, "
                f"expected ({rows.shape[0]}, {self.writer_args['dim']})"
            )
        self._rows.append(rows)
        self._vecs.append(vecs)
        for key in ("tokens", "masks", "meta"):
            store = getattr(self, f"_{key}")
            if key in prediction:
                items = [x if key == "meta" else _numpy(x) for x in prediction[key]]
                if len(items) != rows.shape[0]:
                    raise DataError(f"predict_step returned {len(items)} {key} for {rows.shape[0]} rows")
                if store is None:
                    if self._batches:
                        raise DataError(f"predict_step returned {key!r} for some batches but not others")
                    store = []
                    setattr(self, f"_{key}", store)
                store.extend(items)
            elif store is not None:
                raise DataError(f"predict_step returned {key!r} for some batches but not others")
        self._buffered += rows.shape[0]
        self._batches += 1
        while self._buffered >= self.block_rows:
            self._flush(self.block_rows)

    def _next_block_id(self) -> int:
        assert self.writer is not None
        while True:
            block = self._counter * self._world + self._rank
            self._counter += 1
            if block not in self.writer.completed_blocks:
                return block

    def _flush(self, n: int) -> None:
        if self.writer is None:
            raise RuntimeError("IndexPredictionWriter used outside Trainer.predict")
        rows, vecs = np.concatenate(self._rows), np.concatenate(self._vecs)
        take = slice(0, n)
        extras = {k: getattr(self, f"_{k}") for k in ("tokens", "masks", "meta")}
        self.writer.write_block(
            self._next_block_id(),
            rows[take],
            vecs[take],
            tokens=None if extras["tokens"] is None else extras["tokens"][:n],
            masks=None if extras["masks"] is None else extras["masks"][:n],
            meta=None if extras["meta"] is None else extras["meta"][:n],
        )
        self._rows, self._vecs = [rows[n:]], [vecs[n:]]
        for store in extras.values():
            if store is not None:
                del store[:n]
        self._buffered -= n

    def on_predict_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Flush the partial last block, then (rank 0, after a barrier) finalize the index."""
        if self._buffered:
            self._flush(self._buffered)
        trainer.strategy.barrier("rise_index_flushed")
        error: Exception | None = None
        if self.finalize and self._rank == 0:
            assert self.writer is not None
            try:
                self.index = self.writer.finalize()
            except Exception as exc:  # re-raised after the barrier so other ranks are not left waiting
                error = exc
        trainer.strategy.barrier("rise_index_finalized")
        if error is not None:
            raise error
