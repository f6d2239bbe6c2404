"""Lightning callbacks that show progress (rank 0 only): an index build's rows written, rows/s and ETA; a
training run's steps, tokens/s, loss and ETA."""

from __future__ import annotations

import time
from typing import Any

import lightning as L
import torch

from rise_exp.core import progress
from rise_exp.core.errors import ConfigError
from rise_exp.models.layers import decoder_layers


class PredictProgress(L.Callback):
    """One tqdm bar over the rows a prediction (index build) computes.

    It also advances within a batch, as the model's decoder layers finish (forward hooks on
    ``pl_module.model``'s blocks, removed at the end): a pool of one or a few large batches would otherwise
    show 0 rows until each batch ends. A batch's rows are shown done in proportion to its layers done.
    """

    def __init__(self, total_rows: int, desc: str) -> None:
        self.total, self.desc = total_rows, desc
        self._bar: Any = None
        self._hooks: list[Any] = []
        self._stages = 1  # a batch's forward stages: its decoder layers, then the rest
        self._chunks = self._rows = self._stage = self._shown = 0

    def on_predict_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        self._bar = progress.bar(self.total, self.desc, unit="row")
        model = getattr(pl_module, "model", None)
        try:
            layers = list(decoder_layers(model)) if isinstance(model, torch.nn.Module) else []
        except ConfigError:  # a model without a recognisable block stack: whole batches only
            layers = []
        self._stages = len(layers) + 1
        self._hooks = [layer.register_forward_hook(self._layer_done) for layer in layers]

    def on_predict_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        rows = batch.get("row") if isinstance(batch, dict) else None
        self._chunks = int(rows.numel()) if isinstance(rows, torch.Tensor) else 0
        self._rows = int(torch.unique(rows).numel()) * trainer.world_size if self._chunks else 0
        self._stage = self._shown = 0

    def _layer_done(self, module: Any, args: Any, output: Any) -> None:
        """A decoder block finished a forward over this batch (not the head's one-row check): show its share."""
        hidden = output[0] if isinstance(output, tuple) else output
        if self._bar is None or not isinstance(hidden, torch.Tensor) or hidden.shape[0] != self._chunks:
            return
        self._stage += 1
        target = min(self._rows * self._stage // self._stages, self._rows)
        if target > self._shown:
            self._bar.update(target - self._shown)
            self._shown = target

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
            self._bar.update(max(len(outputs["rows"]) * trainer.world_size - self._shown, 0))
        self._rows = self._shown = 0

    def on_predict_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._close()

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self._close()

    def _close(self) -> None:
        for hook in self._hooks:
            hook.remove()
        self._hooks = []
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
