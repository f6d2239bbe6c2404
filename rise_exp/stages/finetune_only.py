"""Finetune stage on its own: train (or reuse the cache) and report the losses."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from rise_exp.pipeline import prepare_logged
from rise_exp.results import print_metrics, write_json


def run_finetune_stage(cfg: DictConfig, run_dir: Path) -> dict[str, float]:
    """Finetune the configured model on the task's pool; writes metrics.json with the losses."""
    prep = prepare_logged(cfg, run_dir)
    metrics = dict(prep.finetune.metrics) if prep.finetune else {}
    metrics["checkpoints"] = len(prep.ctx.checkpoints)
    write_json(run_dir / "metrics.json", metrics)
    print_metrics(metrics, title=f"finetune {cfg.model.name} on {cfg.task.name}")
    return metrics
