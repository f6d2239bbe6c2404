"""Logging a finished report to an offline W&B run (an optional sink: failures only warn)."""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd


def log_to_wandb(
    table: pd.DataFrame, summary: pd.DataFrame, plots: Sequence[Path], out: Path, config: Mapping[str, Any]
) -> bool:
    """Log the report table and the numeric summary (``wandb.Table``) and the plots to an offline W&B run
    under ``out``; warn and carry on when wandb is missing or fails.

    Returns:
        Whether the run was written.
    """
    try:
        import wandb
    except ImportError as e:
        warnings.warn(f"wandb is not importable ({e}); skipping the W&B log", stacklevel=2)
        return False
    os.environ.setdefault("WANDB_SILENT", "true")
    try:
        run = wandb.init(mode="offline", dir=str(out), project="rise-exp", job_type="report", config=dict(config))
        try:
            stats = summary.astype(object).where(summary.notna(), None)
            payload: dict[str, Any] = {
                "report": wandb.Table(dataframe=table.astype(str)),
                "summary": wandb.Table(dataframe=stats),
            }
            payload.update({p.stem: wandb.Image(str(p)) for p in plots})
            run.log(payload)
        finally:
            run.finish()
    except Exception as e:  # an optional sink: the report files are already written
        warnings.warn(f"W&B logging failed ({type(e).__name__}: {e}); the report files are written", stacklevel=2)
        return False
    return True
