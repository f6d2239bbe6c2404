"""Finetune stage on its own: train (or reuse the cache) and report the losses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rise_exp.run.config import RunConfig
from rise_exp.run.pipeline import prepare_logged
from rise_exp.run.runner import publish


def run(run: RunConfig, run_dir: Path) -> dict[str, Any]:
    """Finetune the configured model on the task's pool; writes metrics.json with the losses."""
    prep = prepare_logged(run, run_dir)
    metrics: dict[str, Any] = dict(prep.finetune.metrics) if prep.finetune else {}
    metrics["checkpoints"] = len(prep.ctx.checkpoints)
    publish(run, run_dir, metrics, stage="finetune_summary", title=f"finetune {run.model.name} on {run.task.name}")
    return metrics
