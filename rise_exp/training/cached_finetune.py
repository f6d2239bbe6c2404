"""Finetuning: Lightning ``Trainer.fit`` on the training pool, a HF checkpoint after every epoch.

The checkpoint trajectory (``epoch-000`` = the starting weights, then one per epoch) is what ZO-Inf
consumes. A finished run is cached by a hash of everything it depends on (:func:`finetune_key`) and
reused when unchanged. The cache directory is locked while it is checked and trained (``<dir>.lock``):
a concurrent run waits and then reuses the result. After every epoch a resume point is written (a
Lightning checkpoint with the optimiser, scheduler and random states, then ``RESUME.json``), so a run
that was killed continues from its last finished epoch and ends with the weights an uninterrupted run
would have; an unfinished directory without a resume point is deleted, only by the lock holder (so never
while another process is still writing it).
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch

from rise_exp.config.finetune import FinetuneConfig
from rise_exp.config.trainer import TrainerConfig
from rise_exp.core import sealed
from rise_exp.core.files import save_json
from rise_exp.core.hashing import config_hash
from rise_exp.core.locks import cache_lock, launched_rank
from rise_exp.data.encoding import encode_records
from rise_exp.data.records import Record
from rise_exp.lightning.callbacks import TrainingProgress
from rise_exp.training.lm_module import CausalLMModule
from rise_exp.training.model_losses import mean_token_loss
from rise_exp.training.recipe import eval_sample, fit_rows

log = logging.getLogger(__name__)


@dataclass
class FinetuneResult:
    """Where the trained weights are and how training went."""

    final_dir: Path
    checkpoints: list[Path]
    metrics: dict[str, float]
    cached: bool


#: Written after each epoch's checkpoints: ``{"epochs_done": k}``, the epoch ``RESUME_CKPT`` ends.
RESUME_FILE = "RESUME.json"
#: The Lightning checkpoint (weights, optimiser, scheduler, loop and random states) of the last epoch.
RESUME_CKPT = "resume.ckpt"


def model_state_dict(trainer: L.Trainer) -> dict[str, torch.Tensor]:
    """The full weights of the LightningModule's ``model``, keyed as ``model.state_dict()`` keys them.

    A collective under FSDP (``strategy.lightning_module_state_dict`` gathers the shards, to rank 0): every
    rank calls it. Reading ``module.model``'s parameters directly would give each rank its own shard."""
    full = trainer.strategy.lightning_module_state_dict()
    return {k[len("model.") :]: v for k, v in full.items() if k.startswith("model.")}


class SaveHFEachEpoch(L.Callback):
    """Write a Hugging Face checkpoint (model + tokenizer) before training and after every epoch, each
    followed by a resume point (``RESUME_CKPT``, then ``RESUME_FILE``); the random states travel in the
    checkpoint as this callback's state."""

    def __init__(self, out_dir: Path, tokenizer: Any) -> None:
        self.out_dir, self.tokenizer = Path(out_dir), tokenizer

    def save(self, trainer: L.Trainer, module: CausalLMModule, epoch: int) -> None:
        """Every rank calls it: a sharding strategy (FSDP) gathers the full weights, rank 0 writes them."""
        weights = model_state_dict(trainer)
        if not trainer.is_global_zero:
            return
        d = self.out_dir / f"epoch-{epoch:03d}"
        module.model.save_pretrained(d, state_dict=weights)
        self.tokenizer.save_pretrained(d)
        sealed.seal(d, {"epoch": epoch})

    def on_train_start(self, trainer: L.Trainer, pl_module: CausalLMModule) -> None:
        # a resumed run keeps its start; rank 0's answer, so that every rank joins the same collectives
        if trainer.strategy.broadcast(not (self.out_dir / "epoch-000").is_dir(), src=0):
            self.save(trainer, pl_module, 0)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: CausalLMModule) -> None:
        epoch = trainer.current_epoch + 1
        self.save(trainer, pl_module, epoch)
        tmp = self.out_dir / (RESUME_CKPT + ".tmp")
        trainer.save_checkpoint(tmp)  # every rank calls it; rank 0 writes
        if trainer.is_global_zero:
            os.replace(tmp, self.out_dir / RESUME_CKPT)
            save_json(self.out_dir / RESUME_FILE, {"epochs_done": epoch})

    def state_dict(self) -> dict[str, Any]:
        """The random states, as tensors and plain values (a checkpoint loads with ``weights_only``)."""
        key, keys, pos, has_gauss, gauss = np.random.get_state(legacy=True)
        version, words, py_gauss = random.getstate()
        return {
            "torch": torch.get_rng_state(),
            "numpy": [key, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(gauss)],
            "python": [version, torch.tensor(words, dtype=torch.int64), py_gauss],
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        torch.set_rng_state(state_dict["torch"])
        key, keys, pos, has_gauss, gauss = state_dict["numpy"]
        np.random.set_state((key, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
        version, words, py_gauss = state_dict["python"]
        random.setstate((version, tuple(int(w) for w in words.tolist()), py_gauss))


def resume_point(out_dir: Path, tidy: bool = True) -> tuple[Path, int] | None:
    """``(checkpoint, epochs done)`` of an unfinished finetune that can continue, else None.

    With ``tidy`` (the lock holder), epoch directories past the resume point (written when the run was
    killed) are removed.
    """
    marker, ckpt = out_dir / RESUME_FILE, out_dir / RESUME_CKPT
    if not marker.is_file() or not ckpt.is_file():
        return None
    try:
        done = int(json.loads(marker.read_text())["epochs_done"])
    except (ValueError, KeyError, TypeError) as exc:
        log.warning("%s is unreadable (%s); the finetune starts over", marker, exc)
        return None
    damaged = _damaged_epochs(out_dir, range(done + 1))
    if damaged:
        log.warning("%s names epoch %d but %s; the finetune starts over", marker, done, damaged)
        return None
    for extra in out_dir.glob("epoch-*") if tidy else ():
        if extra.is_dir() and extra.name > f"epoch-{done:03d}":
            shutil.rmtree(extra)
    return ckpt, done


def _damaged_epochs(out_dir: Path, epochs: Sequence[int]) -> str | None:
    """What is wrong with the sealed checkpoints ``epoch-<e>`` of ``out_dir`` (first problem), or None."""
    for e in epochs:
        issue = sealed.problem(out_dir / f"epoch-{e:03d}")
        if issue is not None:
            return f"epoch-{e:03d}: {issue}"
    return None


def finetune_key(model_identity: str, data_hash: str, cfg: FinetuneConfig) -> str:
    """Cache key of a finetuning run: the starting weights, the data and every finetune setting."""
    return config_hash({"model": model_identity, "data": data_hash, "finetune": cfg.to_dict(), "seed": cfg.seed}, n=16)


def run_finetune(
    model: torch.nn.Module,
    tokenizer: Any,
    train: Sequence[Record],
    *,
    cfg: FinetuneConfig,
    trainer: TrainerConfig,
    out_dir: Path,
    loggers: Sequence[Any] = (),
) -> FinetuneResult:
    """Finetune ``model`` on ``train`` unless ``out_dir`` already holds the finished result.

    Args:
        model: Starting HF causal LM (modified in place).
        tokenizer: Its tokenizer (saved with every checkpoint).
        train: The training pool.
        cfg: Finetune settings (epochs, learning-rate schedule, batch budget, seed, ...).
        trainer: Lightning hardware settings.
        out_dir: Cache directory of this run (see :func:`finetune_key`).
        loggers: Lightning loggers.
    """
    out_dir = Path(out_dir)
    lead = launched_rank() == 0  # launched ranks > 0 join rank 0's fit, which holds the lock
    with cache_lock(out_dir, f"the finetune {out_dir.name}", enabled=lead):
        info = _finished(out_dir / "DONE.json")
        if info is not None:
            ckpts = sorted(p for p in out_dir.glob("epoch-*") if p.is_dir())
            damaged = _damaged_epochs(out_dir, range(int(info["final"].rsplit("-", 1)[-1]) + 1))
            if not damaged:
                return FinetuneResult(out_dir / info["final"], ckpts, info["metrics"], cached=True)
            log.warning("the cached finetune %s is damaged (%s); retraining it", out_dir, damaged)
            if lead:
                (out_dir / "DONE.json").unlink()
        resume = resume_point(out_dir, tidy=lead)
        if resume is not None:
            log.info("resuming the unfinished finetune %s after epoch %d", out_dir, resume[1])
        elif out_dir.exists() and lead:
            shutil.rmtree(out_dir)  # an unfinished earlier attempt; its process is gone (we hold the lock)
        out_dir.mkdir(parents=True, exist_ok=True)
        return _train(
            model, tokenizer, train, cfg=cfg, trainer=trainer, out_dir=out_dir, loggers=loggers, resume=resume
        )


def _finished(done: Path) -> dict[str, Any] | None:
    """The contents of a finished run's ``DONE.json``; None when missing or unreadable (then retrained)."""
    if not done.exists():
        return None
    try:
        info = json.loads(done.read_text())
        if isinstance(info, dict) and isinstance(info.get("final"), str) and isinstance(info.get("metrics"), dict):
            if re.fullmatch(r"epoch-\d{3}", info["final"]) and (done.parent / info["final"]).is_dir():
                return info
        problem = "lacks 'final' / 'metrics' or its final checkpoint"
    except ValueError as exc:
        problem = f"is unreadable ({exc})"
    log.warning("%s %s; the finetune is redone", done, problem)
    return None


def _train(
    model: torch.nn.Module,
    tokenizer: Any,
    train: Sequence[Record],
    *,
    cfg: FinetuneConfig,
    trainer: TrainerConfig,
    out_dir: Path,
    loggers: Sequence[Any],
    resume: tuple[Path, int] | None = None,
) -> FinetuneResult:
    """Finetune into ``out_dir`` (empty, or continuing from ``resume``) and mark it finished with
    ``DONE.json`` (written atomically); the resume point is then removed."""
    done = out_dir / "DONE.json"
    rows = encode_records(train, tokenizer, mask_prompt=cfg.mask_prompt, max_length=cfg.max_length)
    pad = tokenizer.pad_token_id
    probe = eval_sample(rows, cfg.eval_rows, cfg.seed)
    loss_before = mean_token_loss(model, probe, pad)
    t0 = time.perf_counter()
    model, fit = fit_rows(
        model,
        rows,
        pad,
        cfg=cfg,
        trainer=trainer,
        root_dir=out_dir,
        loggers=loggers,
        callbacks=[SaveHFEachEpoch(out_dir, tokenizer), TrainingProgress("finetune")],
        ckpt_path=None if resume is None else resume[0],
    )
    seconds = time.perf_counter() - t0
    loss_after = mean_token_loss(model, probe, pad)
    ckpts = sorted(p for p in out_dir.glob("epoch-*") if p.is_dir())
    metrics = {
        "finetune/loss_before": loss_before,
        "finetune/loss_after": loss_after,
        "finetune/seconds": seconds,
        "finetune/epochs": float(len(ckpts) - 1),
        "finetune/steps": float(fit.global_step),
        "finetune/eval_rows": float(len(probe)),
        "finetune/resumed_after_epoch": float(0 if resume is None else resume[1]),
    }
    final = ckpts[-1].name
    if fit.is_global_zero:
        save_json(done, {"final": final, "metrics": metrics})
        for name in (RESUME_FILE, RESUME_CKPT):
            (out_dir / name).unlink(missing_ok=True)
    log.info(
        "finetuned %d steps in %.1fs: loss %.3f -> %.3f on %d rows",
        fit.global_step,
        seconds,
        loss_before,
        loss_after,
        len(probe),
    )
    return FinetuneResult(out_dir / final, ckpts, metrics, cached=False)
