"""Continued pretraining of one fresh model copy on packed blocks (Lightning ``Trainer.fit``)."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch

from rise_exp.data.encoding import EncodedRow
from rise_exp.errors import ConfigError
from rise_exp.lightning.data import make_loader
from rise_exp.lightning.lm_module import CausalLMModule
from rise_exp.lightning.trainer import make_trainer

TRAIN_KEYS = ("lr", "weight_decay", "warmup_ratio", "min_lr_ratio", "betas", "grad_clip", "max_tokens_per_batch")


class TokenCounter(L.Callback):
    """Counts the tokens (attended positions) and loss targets of every training batch this rank sees."""

    def __init__(self) -> None:
        self.tokens = 0
        self.targets = 0
        self.batches = 0

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any,
                             batch_idx: int) -> None:
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


def check_train_cfg(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """``stage.train`` with unknown keys rejected and values range-checked."""
    unknown = sorted(set(cfg) - set(TRAIN_KEYS))
    if unknown:
        raise ConfigError(f"unknown setting(s) {['stage.train.' + k for k in unknown]}; "
                          f"allowed: {', '.join(TRAIN_KEYS)}")
    out = {"lr": 1e-5, "weight_decay": 0.0, "warmup_ratio": 0.1, "min_lr_ratio": 0.0, "betas": (0.9, 0.999),
           "grad_clip": 1.0, "max_tokens_per_batch": 4096, **dict(cfg)}
    if not float(out["lr"]) > 0:
        raise ConfigError(f"stage.train.lr must be > 0, got {out['lr']}")
    if not 0 <= float(out["warmup_ratio"]) < 1:
        raise ConfigError(f"stage.train.warmup_ratio must be in [0, 1), got {out['warmup_ratio']}")
    if not 0 <= float(out["min_lr_ratio"]) <= 1:
        raise ConfigError(f"stage.train.min_lr_ratio must be in [0, 1], got {out['min_lr_ratio']}")
    if int(out["max_tokens_per_batch"]) <= 0:
        raise ConfigError(f"stage.train.max_tokens_per_batch must be > 0, got {out['max_tokens_per_batch']}")
    return out


def continued_pretraining(model: torch.nn.Module, blocks: Sequence[EncodedRow], pad_id: int, *,
                          train_cfg: Mapping[str, Any], trainer_cfg: Mapping[str, Any], root_dir: Path, seed: int,
                          loggers: Sequence[Any] = ()) -> TrainStats:
    """One epoch over ``blocks`` with AdamW, linear warm-up and cosine decay (modifies ``model`` in place).

    Args:
        model: A fresh copy of the starting HF causal LM.
        blocks: Packed fixed-length blocks (:func:`rise_exp.closed_loop.packing.pack_blocks`).
        pad_id: Padding token id (unused by equal-length blocks, needed by the collator).
        train_cfg: ``stage.train`` (see :func:`check_train_cfg`).
        trainer_cfg: The ``trainer`` config node.
        root_dir: Lightning's root directory for this run.
        seed: Seed of batch order and dropout.
        loggers: Lightning loggers of this run.
    """
    t = check_train_cfg(train_cfg)
    block_len = len(blocks[0])
    if int(t["max_tokens_per_batch"]) < block_len:
        raise ConfigError(f"stage.train.max_tokens_per_batch ({t['max_tokens_per_batch']}) is below one block "
                          f"(stage.pack.block_len = {block_len})")
    L.seed_everything(int(seed), workers=True, verbose=False)
    module = CausalLMModule(model, lr=float(t["lr"]), weight_decay=float(t["weight_decay"]),
                            warmup_ratio=float(t["warmup_ratio"]), min_lr_ratio=float(t["min_lr_ratio"]),
                            betas=tuple(float(b) for b in t["betas"]))
    counter = TokenCounter()
    trainer = make_trainer(trainer_cfg, root_dir=root_dir, loggers=list(loggers), callbacks=[counter], max_epochs=1,
                           gradient_clip_val=float(t["grad_clip"]) if t["grad_clip"] else None)
    loader = make_loader(blocks, pad_id, int(t["max_tokens_per_batch"]), shuffle=True, seed=int(seed))
    model.train()
    t0 = time.perf_counter()
    trainer.fit(module, train_dataloaders=loader)
    seconds = time.perf_counter() - t0
    model.eval()
    loss = trainer.callback_metrics.get("train/loss_epoch")
    return TrainStats(tokens=counter.tokens, targets=counter.targets, steps=int(trainer.global_step),
                      final_loss=float(loss) if loss is not None else float("nan"), seconds=seconds)
