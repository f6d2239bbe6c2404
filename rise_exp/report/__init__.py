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

from rise_exp.report.cli import build_parser, main
from rise_exp.report.locate import find_report
from rise_exp.report.members import collect_members, members_section, summarize_members
from rise_exp.report.page import write_run_page
from rise_exp.report.plots import plot_ablation, plot_metric_vs_bytes, write_plots
from rise_exp.report.render import render_markdown, tex_escape, to_latex, to_markdown
from rise_exp.report.runs import (
    NAME_KEYS,
    REPORT_DIRNAME,
    RunRecord,
    check_tasks,
    collect_runs,
    find_run_dirs,
    read_run,
)
from rise_exp.report.summary import (
    COST_KEYS,
    DEFAULT_METRIC,
    SKETCH_DIMS,
    display_metrics,
    display_table,
    fmt_mean_std,
    fmt_number,
    fmt_setting,
    resolve_metric,
    summarize,
)
from rise_exp.report.sweep_page import write_sweep_page
from rise_exp.report.wandb_log import log_to_wandb
from rise_exp.report.write import Report, default_out, write_report

__all__ = [
    "COST_KEYS",
    "DEFAULT_METRIC",
    "NAME_KEYS",
    "REPORT_DIRNAME",
    "Report",
    "RunRecord",
    "SKETCH_DIMS",
    "build_parser",
    "check_tasks",
    "collect_members",
    "collect_runs",
    "default_out",
    "display_metrics",
    "find_report",
    "display_table",
    "find_run_dirs",
    "fmt_mean_std",
    "fmt_number",
    "fmt_setting",
    "log_to_wandb",
    "main",
    "members_section",
    "plot_ablation",
    "plot_metric_vs_bytes",
    "read_run",
    "render_markdown",
    "resolve_metric",
    "summarize",
    "summarize_members",
    "tex_escape",
    "to_latex",
    "to_markdown",
    "write_plots",
    "write_report",
    "write_run_page",
    "write_sweep_page",
]
