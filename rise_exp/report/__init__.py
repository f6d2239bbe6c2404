"""Results report over Hydra run directories: a per-job table, a seed summary, Markdown/LaTeX/CSV and plots.

    python -m rise_exp.report multirun/2025-01-01_12-00-00 [--out DIR] [--metric auprc@10] [--no-wandb]

The input is a Hydra multirun directory (``multirun.yaml`` plus one job dir per run), a single run dir, or
any tree of run dirs. A run dir holds ``config.yaml`` (or Hydra's ``.hydra/config.yaml``), optionally
``.hydra/overrides.yaml``, ``status.json`` and ``metrics.json``. Failed and unfinished jobs, and jobs whose
files cannot be parsed, are kept in every table and listed in the report; they never vanish from it.
Without ``--out`` the report goes into ``<input dir>/report/``, which later reads of the sweep skip.

Modules: :mod:`~rise_exp.report.runs` (reading run dirs), :mod:`~rise_exp.report.summary` (seed statistics,
the display table, formatting), :mod:`~rise_exp.report.render` (Markdown, LaTeX, report.md),
:mod:`~rise_exp.report.plots`, :mod:`~rise_exp.report.wandb_log`, :mod:`~rise_exp.report.write`
(:func:`write_report`), :mod:`~rise_exp.report.cli`, :mod:`~rise_exp.report.closed_loop` (the
closed-loop stage's selector tables and budget plot), :mod:`~rise_exp.report.members` (RISE ensemble
members scored alone, pooled over sketch, method and finetune seeds), :mod:`~rise_exp.report.locate` (the
notebook's report, found from ``notebooks/`` too), and the HTML results pages:
:mod:`~rise_exp.report.page` (a run's ``report.html``, written by every run), :mod:`~rise_exp.report.sweep_page`
(a sweep's, linking its runs') and :mod:`~rise_exp.report.html` (their templates, shading and charts).
"""

from __future__ import annotations

import importlib
from typing import Any

#: Each public name and the module it comes from: imported on first use (PEP 562), so a run that only writes
#: its results page (``report.page``) does not import the plots (matplotlib) or the tables (pandas).
_EXPORTS = {
    "COST_KEYS": "summary",
    "DEFAULT_METRIC": "summary",
    "NAME_KEYS": "runs",
    "REPORT_DIRNAME": "runs",
    "Report": "write",
    "RunRecord": "runs",
    "SKETCH_DIMS": "summary",
    "build_parser": "cli",
    "check_tasks": "runs",
    "collect_members": "members",
    "collect_runs": "runs",
    "default_out": "write",
    "display_metrics": "summary",
    "display_table": "summary",
    "find_report": "locate",
    "find_run_dirs": "runs",
    "fmt_mean_std": "summary",
    "fmt_number": "summary",
    "fmt_setting": "summary",
    "log_to_wandb": "wandb_log",
    "main": "cli",
    "members_section": "members",
    "plot_ablation": "plots",
    "plot_metric_vs_bytes": "plots",
    "read_run": "runs",
    "render_markdown": "render",
    "resolve_metric": "summary",
    "summarize": "summary",
    "summarize_members": "members",
    "tex_escape": "render",
    "to_latex": "render",
    "to_markdown": "render",
    "write_plots": "plots",
    "write_report": "write",
    "write_run_page": "page",
    "write_sweep_page": "sweep_page",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
