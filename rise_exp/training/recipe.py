"""The one training recipe of a finetune (Lightning ``Trainer.fit`` on encoded rows, LoRA-wrapped when asked):
the cached finetune and every counterfactual retraining call it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch

from rise_exp.config.finetune import FinetuneConfig
from rise_exp.config.trainer import TrainerConfig
from rise_exp.core.errors import ConfigError
from rise_exp.data.encoding import EncodedRow
from rise_exp.lightning.data import make_loader
from rise_exp.lightning.trainer_factory import make_trainer
from rise_exp.training.lm_module import CausalLMModule


def fit_rows(
    model: torch.nn.Module,
    rows: Sequence[EncodedRow],
    pad_id: int,
    *,
    cfg: FinetuneConfig,
    trainer: TrainerConfig,
    root_dir: Path,
    loggers: Sequence[Any] = (),
    callbacks: Sequence[L.Callback] = (),
    ckpt_path: Path | None = None,
) -> tuple[torch.nn.Module, L.Trainer]:
    """Train ``model`` on encoded ``rows`` with the finetune settings (LoRA-wrapped when ``cfg.lora``).

    The one training recipe of a finetune: the cached finetune and every counterfactual retraining call it,
    so a retraining on the whole pool is the finetune. The global seed is set to ``cfg.seed`` first;
    ``ckpt_path`` continues a run from a Lightning checkpoint of this recipe.

    Returns:
        The trained model (the LoRA-wrapped one when ``cfg.lora``), in eval mode, and the Lightning trainer.
    """
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    if trainer.activation_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if cfg.lora:
        model = with_lora(model, cfg)
    module = CausalLMModule(
        model, lr=cfg.lr, weight_decay=cfg.weight_decay, warmup_ratio=cfg.warmup_ratio, min_lr_ratio=cfg.min_lr_ratio
    )
    fit = make_trainer(
        trainer,
        root_dir=root_dir,
        loggers=list(loggers),
        callbacks=list(callbacks),
        max_epochs=cfg.epochs,
        max_steps=cfg.max_steps or -1,
        accumulate_grad_batches=cfg.grad_accum,
        gradient_clip_val=cfg.grad_clip,
        model=model,
    )
    model.train()
    loader = make_loader(rows, pad_id, cfg.max_tokens_per_batch, shuffle=True, seed=cfg.seed)
    fit.fit(module, train_dataloaders=loader, ckpt_path=None if ckpt_path is None else str(ckpt_path))
    model.eval()
    return model, fit


def eval_sample(rows: Sequence[EncodedRow], n: int | None, seed: int) -> list[EncodedRow]:
    """The rows the loss before/after is measured on: all of them, or ``n`` drawn with ``seed`` (order kept)."""
    if n is None or n >= len(rows):
        return list(rows)
    keep = np.sort(np.random.default_rng(seed).choice(len(rows), size=n, replace=False))
    return [rows[i] for i in keep]


def with_lora(model: torch.nn.Module, cfg: FinetuneConfig) -> torch.nn.Module:
    """``model`` wrapped with trainable LoRA adapters (peft); the base weights are frozen."""
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError:
        raise ConfigError("finetune.lora=true needs peft: pip install 'rise-exp[lora]'") from None
    targets: str | list[str] = cfg.lora_targets
    if targets != "all-linear":
        targets = [t.strip() for t in cfg.lora_targets.split(",") if t.strip()]
    lora = LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=targets,
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, lora)
