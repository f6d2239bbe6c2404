"""Build Lightning Trainers from the ``trainer`` settings."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L

from rise_exp.config.trainer import TrainerConfig


def make_trainer(
    cfg: TrainerConfig,
    *,
    root_dir: Path,
    loggers: Sequence[Any] | bool = False,
    callbacks: Sequence[Any] = (),
    **overrides: Any,
) -> L.Trainer:
    """A Trainer with the configured hardware settings; our samplers shard batches themselves under DDP."""
    kwargs: dict[str, Any] = dict(cfg.lightning_kwargs())
    kwargs.update(
        default_root_dir=str(root_dir),
        logger=list(loggers) if loggers else False,
        callbacks=list(callbacks),
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=cfg.progress_bar,
        use_distributed_sampler=False,
        log_every_n_steps=cfg.log_every_n_steps,
    )
    kwargs.update(overrides)
    return L.Trainer(**kwargs)
