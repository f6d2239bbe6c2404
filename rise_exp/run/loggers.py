"""Run loggers from the ``logger`` config group: W&B (offline by default) and CSV, or none."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from rise_exp.config.logger import LoggerConfig


def make_loggers(
    cfg: LoggerConfig, run_dir: Path, *, name: str, group: str | None = None, config: Mapping[str, Any] | None = None
) -> list[Any]:
    """Lightning loggers for one stage; every kind but ``none`` also writes CSV into the run dir."""
    kind = cfg.kind
    if kind == "none":
        return []
    from lightning.pytorch.loggers import CSVLogger

    loggers: list[Any] = [CSVLogger(save_dir=str(run_dir), name="csv", version=name)]
    if kind == "wandb":
        from lightning.pytorch.loggers import WandbLogger

        os.environ.setdefault("WANDB_SILENT", "true")
        wandb_logger = WandbLogger(
            project=cfg.project,
            entity=cfg.entity,
            name=name,
            group=group,
            save_dir=str(run_dir),
            offline=cfg.offline,
            mode="offline" if cfg.offline else "online",
            tags=list(cfg.tags),
            config=dict(config or {}),
            reinit="finish_previous",
        )
        # Lightning always passes anonymous=None, which W&B answers with a deprecation warning on every run
        wandb_logger._wandb_init.pop("anonymous", None)
        loggers.append(wandb_logger)
    return loggers


def log_summary(loggers: list[Any], metrics: Mapping[str, float], config: Any | None = None) -> None:
    """Log final metrics (and hyper-parameters) to every logger and flush them."""
    flat = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))}
    for lg in loggers:
        if config is not None:
            hp = OmegaConf.to_container(config, resolve=True) if isinstance(config, DictConfig) else dict(config)
            lg.log_hyperparams(hp)
        lg.log_metrics(flat)
        lg.save()


def close_loggers(loggers: list[Any]) -> None:
    """Finish W&B runs so the next stage starts its own."""
    for lg in loggers:
        lg.finalize("success")
        exp = getattr(lg, "_experiment", None)
        if exp is not None and hasattr(exp, "finish"):
            exp.finish()
