"""Build Lightning Trainers from the ``trainer`` config group."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L

TRAINER_KEYS = ("accelerator", "devices", "num_nodes", "strategy", "precision")


def make_trainer(cfg: Mapping[str, Any], *, root_dir: Path, loggers: Sequence[Any] | bool = False,
                 callbacks: Sequence[Any] = (), **overrides: Any) -> L.Trainer:
    """A Trainer with the configured hardware settings; our samplers shard batches themselves under DDP."""
    kwargs: dict[str, Any] = {k: cfg[k] for k in TRAINER_KEYS if k in cfg and cfg[k] is not None}
    kwargs.update(
        default_root_dir=str(root_dir),
        logger=list(loggers) if loggers else False,
        callbacks=list(callbacks),
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=bool(cfg.get("progress_bar", False)),
        use_distributed_sampler=False,
        log_every_n_steps=int(cfg.get("log_every_n_steps", 10)),
    )
    kwargs.update(overrides)
    return L.Trainer(**kwargs)
