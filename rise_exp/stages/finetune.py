"""Finetune stage: Lightning ``Trainer.fit`` on the training pool, a HF checkpoint after every epoch.

The checkpoint trajectory (``epoch-000`` = the starting weights, then one per epoch) is what ZO-Inf
consumes. A finished run is cached by a hash of everything it depends on and reused when unchanged.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch

from rise_exp.data.encoding import EncodedRow, encode_records
from rise_exp.data.records import Record
from rise_exp.lightning.data import make_loader
from rise_exp.lightning.lm_module import CausalLMModule, token_losses
from rise_exp.lightning.trainer import make_trainer
from rise_exp.models import config_hash

log = logging.getLogger(__name__)


@dataclass
class FinetuneResult:
    """Where the trained weights are and how training went."""

    final_dir: Path
    checkpoints: list[Path]
    metrics: dict[str, float]
    cached: bool


class SaveHFEachEpoch(L.Callback):
    """Write a Hugging Face checkpoint (model + tokenizer) after every training epoch."""

    def __init__(self, out_dir: Path, tokenizer: Any) -> None:
        self.out_dir, self.tokenizer = Path(out_dir), tokenizer

    def save(self, module: CausalLMModule, epoch: int) -> None:
        d = self.out_dir / f"epoch-{epoch:03d}"
        module.model.save_pretrained(d)
        self.tokenizer.save_pretrained(d)

    def on_train_start(self, trainer: L.Trainer, pl_module: CausalLMModule) -> None:
        if trainer.is_global_zero:
            self.save(pl_module, 0)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: CausalLMModule) -> None:
        if trainer.is_global_zero:
            self.save(pl_module, trainer.current_epoch + 1)


@torch.no_grad()
def mean_token_loss(model: torch.nn.Module, rows: Sequence[EncodedRow], pad_id: int, max_tokens: int = 4096) -> float:
    """Mean target-token cross-entropy of ``model`` on ``rows`` (eval mode)."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0.0
    device = next(model.parameters()).device
    for batch in make_loader(rows, pad_id, max_tokens):
        s, c = token_losses(model, {k: v.to(device) for k, v in batch.items()})
        total, count = total + float(s.sum()), count + float(c.sum())
    model.train(was_training)
    return total / max(count, 1.0)


def finetune_key(model_identity: str, data_hash: str, ft_cfg: Mapping[str, Any], seed: int) -> str:
    """Cache key of a finetuning run."""
    return config_hash({"model": model_identity, "data": data_hash, "finetune": dict(ft_cfg), "seed": seed}, n=16)


def run_finetune(
    model: torch.nn.Module,
    tokenizer: Any,
    train: Sequence[Record],
    *,
    ft_cfg: Mapping[str, Any],
    trainer_cfg: Mapping[str, Any],
    out_dir: Path,
    seed: int,
    loggers: Sequence[Any] = (),
) -> FinetuneResult:
    """Finetune ``model`` on ``train`` unless ``out_dir`` already holds the finished result.

    Args:
        model: Starting HF causal LM (modified in place).
        tokenizer: Its tokenizer (saved with every checkpoint).
        train: The training pool.
        ft_cfg: The ``finetune`` config node: epochs, lr, weight_decay, warmup_ratio, min_lr_ratio,
            max_tokens_per_batch, max_length, mask_prompt.
        trainer_cfg: The ``trainer`` config node.
        out_dir: Cache directory of this run (see :func:`finetune_key`).
        seed: Seed of shuffling and dropout.
        loggers: Lightning loggers.
    """
    out_dir = Path(out_dir)
    done = out_dir / "DONE.json"
    if done.exists():
        info = json.loads(done.read_text())
        ckpts = sorted(p for p in out_dir.glob("epoch-*") if p.is_dir())
        return FinetuneResult(out_dir / info["final"], ckpts, info["metrics"], cached=True)
    if out_dir.exists():
        shutil.rmtree(out_dir)  # an unfinished earlier attempt
    out_dir.mkdir(parents=True)

    L.seed_everything(seed, workers=True, verbose=False)
    rows = encode_records(train, tokenizer, mask_prompt=bool(ft_cfg.get("mask_prompt", True)),
                          max_length=int(ft_cfg.get("max_length", 512)))
    pad = tokenizer.pad_token_id
    max_tokens = int(ft_cfg.get("max_tokens_per_batch", 4096))
    loss_before = mean_token_loss(model, rows, pad)
    module = CausalLMModule(
        model,
        lr=float(ft_cfg.get("lr", 1e-3)),
        weight_decay=float(ft_cfg.get("weight_decay", 0.0)),
        warmup_ratio=float(ft_cfg.get("warmup_ratio", 0.03)),
        min_lr_ratio=float(ft_cfg.get("min_lr_ratio", 0.1)),
    )
    epochs = int(ft_cfg.get("epochs", 1))
    trainer = make_trainer(trainer_cfg, root_dir=out_dir, loggers=list(loggers),
                           callbacks=[SaveHFEachEpoch(out_dir, tokenizer)], max_epochs=epochs,
                           gradient_clip_val=float(ft_cfg.get("grad_clip", 1.0)))
    t0 = time.perf_counter()
    model.train()
    trainer.fit(module, train_dataloaders=make_loader(rows, pad, max_tokens, shuffle=True, seed=seed))
    seconds = time.perf_counter() - t0
    model.eval()
    loss_after = mean_token_loss(model, rows, pad)
    metrics = {"finetune/loss_before": loss_before, "finetune/loss_after": loss_after,
               "finetune/seconds": seconds, "finetune/epochs": float(epochs)}
    final = f"epoch-{epochs:03d}"
    if trainer.is_global_zero:
        done.write_text(json.dumps({"final": final, "metrics": metrics}, indent=1))
    log.info("finetuned %d epochs in %.1fs: loss %.3f -> %.3f", epochs, seconds, loss_before, loss_after)
    ckpts = sorted(p for p in out_dir.glob("epoch-*") if p.is_dir())
    return FinetuneResult(out_dir / final, ckpts, metrics, cached=False)
