"""Continued pretraining of one fresh model copy on packed blocks (Lightning ``Trainer.fit``)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch

from rise_exp.config.stages import ContinuedTrainingConfig
from rise_exp.config.trainer import TrainerConfig
from rise_exp.core.errors import ConfigError
from rise_exp.data.encoding import EncodedRow
from rise_exp.lightning.callbacks import TrainingProgress
from rise_exp.lightning.data import make_loader
from rise_exp.lightning.trainer_factory import make_trainer
from rise_exp.training.lm_module import CausalLMModule


class TokenCounter(L.Callback):
    """Counts the tokens (attended positions) and loss targets of every training batch this rank sees."""

    def __init__(self) -> None:
        self.tokens = 0
        self.targets = 0
        self.batches = 0

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self.tokens += int(batch["attention_mask"].sum())
        self.targets += int(batch["target_mask"][:, 1:].sum())
        self.batches += 1


@dataclass
class TrainStats:
    """What one continued-pretraining run saw and how long it took."""

    tokens: int
    targets: int
    steps: int
    final_loss: float
    seconds: float


def continued_pretraining(
    model: torch.nn.Module,
    blocks: Sequence[EncodedRow],
    pad_id: int,
    *,
    train_cfg: ContinuedTrainingConfig,
    trainer_cfg: TrainerConfig,
    root_dir: Path,
    seed: int,
    loggers: Sequence[Any] = (),
) -> TrainStats:
    """One epoch over ``blocks`` with AdamW, linear warm-up and cosine decay (modifies ``model`` in place).

    Args:
        model: A fresh copy of the starting HF causal LM.
        blocks: Packed fixed-length blocks (:func:`rise_exp.closed_loop.packing.pack_blocks`).
        pad_id: Padding token id (unused by equal-length blocks, needed by the collator).
        train_cfg: ``stage.train`` settings.
        trainer_cfg: The ``trainer`` config node.
        root_dir: Lightning's root directory for this run.
        seed: Seed of batch order and dropout.
        loggers: Lightning loggers of this run.
    """
    t = train_cfg
    block_len = len(blocks[0])
    if t.max_tokens_per_batch < block_len:
        raise ConfigError(
            f"stage.train.max_tokens_per_batch ({t.max_tokens_per_batch}) is below one block "
            f"(stage.pack.block_len = {block_len})"
        )
    L.seed_everything(int(seed), workers=True, verbose=False)
    if trainer_cfg.activation_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    module = CausalLMModule(
        model,
        lr=t.lr,
        weight_decay=t.weight_decay,
        warmup_ratio=t.warmup_ratio,
        min_lr_ratio=t.min_lr_ratio,
        betas=t.betas,
    )
    counter = TokenCounter()
    trainer = make_trainer(
        trainer_cfg,
        root_dir=root_dir,
        loggers=list(loggers),
        callbacks=[counter, TrainingProgress(f"train {root_dir.name}")],
        max_epochs=1,
        gradient_clip_val=t.grad_clip if t.grad_clip else None,
        model=model,
    )
    loader = make_loader(blocks, pad_id, t.max_tokens_per_batch, shuffle=True, seed=int(seed))
    model.train()
    t0 = time.perf_counter()
    trainer.fit(module, train_dataloaders=loader)
    seconds = time.perf_counter() - t0
    model.eval()
    loss = trainer.callback_metrics.get("train/loss_epoch")
    return TrainStats(
        tokens=counter.tokens,
        targets=counter.targets,
        steps=int(trainer.global_step),
        final_loss=float(loss) if loss is not None else float("nan"),
        seconds=seconds,
    )
