"""Diagnose stage: run one fidelity diagnostic (``diagnostic=<name>``) on the prepared model and task."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rise_exp.diagnostics import diagnostic_entry
from rise_exp.diagnostics.context import DiagnosticInputs
from rise_exp.diagnostics.result import logged_tables, write
from rise_exp.pipeline import prepare_logged
from rise_exp.run_config import RunConfig
from rise_exp.runner import publish


def run(run: RunConfig, run_dir: Path) -> dict[str, Any]:
    """Prepare (cached finetune), run the diagnostic, write its tables and plots, publish its numbers."""
    name = run.stage.diagnostic
    entry = diagnostic_entry(name)
    prep = prepare_logged(run, run_dir)
    result = entry(DiagnosticInputs(run, run_dir, prep.task, prep.ctx, run.stage.settings))
    files = write(result, run_dir)
    metrics = {**result.metrics, "diagnostic": name}
    publish(
        run,
        run_dir,
        {k: v for k, v in metrics.items() if not isinstance(v, str)},
        stage=f"diagnose_{name}",
        title=None,
        files=files,
        tables=logged_tables(result),
        images={stem: run_dir / f"{stem}.png" for stem in result.figures},
    )
    print((run_dir / f"{name}.md").read_text())
    return metrics
