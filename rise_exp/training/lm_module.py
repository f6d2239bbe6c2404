"""LightningModule for causal-LM training (finetuning and continued pretraining)."""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import torch

from rise_exp.training.losses import batch_loss


class CausalLMModule(L.LightningModule):
    """Trains a Hugging Face causal LM on target tokens (response tokens, or all tokens of plain text).

    The loss is the mean over all target tokens of the batch. The optimiser is AdamW with linear warm-up
    followed by cosine decay to ``min_lr_ratio * lr``.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        warmup_ratio: float = 0.03,
        min_lr_ratio: float = 0.1,
        betas: tuple[float, float] = (0.9, 0.95),
    ) -> None:
        super().__init__()
        self.model = model
        self.lr, self.weight_decay, self.warmup_ratio, self.min_lr_ratio = lr, weight_decay, warmup_ratio, min_lr_ratio
        self.betas = tuple(betas)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss_sum, count = batch_loss(self.model, batch)
        loss = loss_sum.sum() / count.sum().clamp_min(1)
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=int(count.sum()))
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        loss_sum, count = batch_loss(self.model, batch)
        self.log("val/loss", loss_sum.sum() / count.sum().clamp_min(1), on_epoch=True, batch_size=int(count.sum()))

    def configure_optimizers(self) -> dict[str, Any]:
        decay, no_decay = [], []
        for p in self.model.parameters():
            if p.requires_grad:
                (no_decay if p.ndim < 2 else decay).append(p)
        opt = torch.optim.AdamW(
            [{"params": decay, "weight_decay": self.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=self.lr,
            betas=self.betas,
        )
        total = max(1, int(self.trainer.estimated_stepping_batches))
        warmup = int(self.warmup_ratio * total)

        def schedule(step: int) -> float:
            if step < warmup:
                return (step + 1) / max(1, warmup)
            progress = (step - warmup) / max(1, total - warmup)
            return self.min_lr_ratio + (1 - self.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
