"""Lightning callbacks that show progress (rank 0 only): an index build's rows written, rows/s and ETA; a
training run's steps, tokens/s, loss and ETA."""

from __future__ import annotations

import time
from typing import Any

import lightning as L

from rise_exp.core import progress


class PredictProgress(L.Callback):
    """One tqdm bar over the rows a prediction (index build) computes."""

    def __init__(self, total_rows: int, desc: str) -> None:
        self.total, self.desc = total_rows, desc
        self._bar: Any = None

    def on_predict_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero:
            self._bar = progress.bar(self.total, self.desc, unit="row")

    def on_predict_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if self._bar is not None and isinstance(outputs, dict) and "rows" in outputs:
            self._bar.update(len(outputs["rows"]) * trainer.world_size)

    def on_predict_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class TrainingProgress(L.Callback):
    """One tqdm bar over optimiser steps with tokens/s and the running loss (rank 0 only)."""

    def __init__(self, desc: str) -> None:
        self.desc = desc
        self._bar: Any = None
        self._tokens = 0
        self._t0 = 0.0

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero:
            self._bar = progress.bar(int(trainer.estimated_stepping_batches), self.desc, unit="step")
            self._tokens, self._t0 = 0, time.perf_counter()

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self._bar is None:
            return
        self._tokens += int(batch["attention_mask"].sum()) * trainer.world_size
        seconds = max(time.perf_counter() - self._t0, 1e-9)
        self._bar.n = int(trainer.global_step)
        loss = trainer.callback_metrics.get("train/loss_step")
        post = {"tok/s": f"{self._tokens / seconds:.0f}"}
        if loss is not None:
            post["loss"] = f"{float(loss):.3f}"
        self._bar.set_postfix(post, refresh=False)
        self._bar.refresh()

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
