"""Build Lightning Trainers from the ``trainer`` settings."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L

from rise_exp.config.trainer import TrainerConfig
from rise_exp.core.errors import ConfigError
from rise_exp.lightning.fsdp import fsdp_strategy
from rise_exp.lightning.placed import placed_trainer_kwargs


def make_trainer(
    cfg: TrainerConfig,
    *,
    root_dir: Path,
    loggers: Sequence[Any] | bool = False,
    callbacks: Sequence[Any] = (),
    model: Any = None,
    **overrides: Any,
) -> L.Trainer:
    """A Trainer with the configured hardware settings; our samplers shard batches themselves under DDP.

    With ``model`` (the module a fit trains) an FSDP strategy wraps each of its transformer blocks as
    its own unit (:mod:`rise_exp.lightning.fsdp`), not the whole model as one.

    The model stays where :mod:`rise_exp.models.placement` decides, before and after the Trainer runs
    (:mod:`rise_exp.lightning.placed`).

    Raises:
        ConfigError: naming the trainer settings when Lightning rejects them (e.g. no GPU).
    """
    kwargs: dict[str, Any] = dict(cfg.lightning_kwargs())
    keep = placed_trainer_kwargs(cfg)
    strategy = keep.get("strategy", cfg.strategy)
    if model is not None and isinstance(strategy, str) and strategy.startswith("fsdp"):
        strategy = fsdp_strategy(model, strategy)
    kwargs.update(
        strategy=strategy,
        default_root_dir=str(root_dir),
        logger=list(loggers) if loggers else False,
        callbacks=list(callbacks) + list(keep.get("callbacks", [])),
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=cfg.progress_bar,
        use_distributed_sampler=False,
        log_every_n_steps=cfg.log_every_n_steps,
    )
    kwargs.update(overrides)
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    try:
        return L.Trainer(**kwargs)
    except (MisconfigurationException, RuntimeError, ValueError) as exc:  # hardware or strategy not usable here
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        settings = ", ".join(f"trainer.{k}={v}" for k, v in cfg.lightning_kwargs().items())
        raise ConfigError(f"Lightning cannot run with {settings}: {first}") from None
