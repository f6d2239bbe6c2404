"""Diagnose stage: run one fidelity diagnostic (``diagnostic=<name>``) on the prepared model and task."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rise_exp.diagnostics import diagnostic_entry
from rise_exp.diagnostics.context import DiagnosticInputs
from rise_exp.diagnostics.result import logged_tables, write
from rise_exp.methods.rise.trunk import remembering_hidden_states
from rise_exp.run.config import RunConfig
from rise_exp.run.pipeline import prepare_logged
from rise_exp.run.runner import placed, publish


def command_overrides() -> tuple[str, ...]:
    """The overrides this run was started with (empty outside a Hydra app)."""
    from hydra.core.hydra_config import HydraConfig

    return tuple(HydraConfig.get().overrides.task) if HydraConfig.initialized() else ()


def run(run: RunConfig, run_dir: Path) -> dict[str, Any]:
    """Prepare (cached finetune), run the diagnostic, write its tables and plots, publish its numbers."""
    name = run.stage.diagnostic
    entry = diagnostic_entry(name)
    prep = prepare_logged(run, run_dir)
    inputs = DiagnosticInputs(run, run_dir, prep.task, prep.ctx, run.stage.settings, command_overrides())
    with placed(prep.ctx), remembering_hidden_states():  # sketches per seed and width share one trunk pass
        result = entry(inputs)
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
