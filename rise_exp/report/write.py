"""Writing a whole report: collect, summarize, render, plot and (optionally) log to W&B."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from rise_exp.report.counterfactual import collect_sections
from rise_exp.report.members import members_section
from rise_exp.report.plots import write_plots
from rise_exp.report.render import render_markdown, to_latex
from rise_exp.report.runs import REPORT_DIRNAME, check_tasks, collect_runs, find_run_dirs
from rise_exp.report.summary import display_metrics, display_table, resolve_metric, summarize
from rise_exp.report.sweep_page import write_sweep_page
from rise_exp.report.wandb_log import log_to_wandb


@dataclass
class Report:
    """What :func:`write_report` produced (``out``: the folder the files went to)."""

    runs: pd.DataFrame
    summary: pd.DataFrame
    markdown: str
    metric: str | None
    files: list[Path]
    out: Path


def default_out(path: str | Path) -> Path:
    """Where a report of ``path`` goes without ``--out``: ``<path>/report`` (skipped when runs are read)."""
    return Path(path) / REPORT_DIRNAME


def _remove_stale_plots(out: Path, keep: Sequence[Path]) -> None:
    for path in [*out.glob("*_vs_bytes.png"), *out.glob("ablation_*.png"), *out.glob("removal-*.png")]:
        if path not in keep:
            path.unlink()


def write_report(
    path: str | Path,
    out: str | Path | None = None,
    *,
    metric: str | None = None,
    pool: Sequence[str] = (),
    allow_mixed_tasks: bool = False,
    use_wandb: bool = True,
) -> Report:
    """Collect the runs under ``path`` and write report.md, report.tex, runs.csv, summary.csv,
    report.json (column roles, for the notebook), the plots, (when runs scored their ensemble members)
    members.csv and members_summary.csv, and report.html (the page, linking each run's own) into ``out``
    (default ``<path>/report``).

    Runs with unparseable files are reported as failed; they do not stop the report. ``pool`` names varied
    settings averaged over with the seed (e.g. ``finetune.seed``); one that does not vary here pools nothing,
    and the report says so.

    Raises:
        DataError: ``path`` is not a directory or holds no runs.
        ConfigError: several tasks without ``allow_mixed_tasks``, or an unknown ``metric``.
    """
    source = Path(path)
    out = default_out(source) if out is None else Path(out)
    runs = collect_runs(source)
    tasks = check_tasks(runs, allow_mixed_tasks)
    settings, metrics = runs.attrs["settings"], runs.attrs["metrics"]
    primary = resolve_metric(metrics, metric)
    pooled = [s for s in dict.fromkeys(pool) if s in settings]
    summary = summarize(runs, pool=pooled)
    shown = display_metrics(summary, metrics, primary)
    table = display_table(summary, shown, summary.attrs["settings"])
    out.mkdir(parents=True, exist_ok=True)
    over = " and ".join(["seeds", *pooled])
    markdown = render_markdown(runs, table, source, tasks, over=over, not_varied=[s for s in pool if s not in settings])
    counterfactual, cf_plots = collect_sections(find_run_dirs(source), out, pooled)
    if counterfactual:
        markdown += "\n## Counterfactual evaluation (stage=lds, stage=removal)\n\n" + counterfactual
    members, member_files = members_section(runs, out)
    if members:
        markdown += "\n## Ensemble members (stage.members=true)\n\n" + members
    files = [out / n for n in ("report.md", "report.tex", "runs.csv", "summary.csv", "report.json")]
    files[0].write_text(markdown)
    caption = f"task {', '.join(tasks)}; mean $\\pm$ sample std over {over}"
    files[1].write_text(to_latex(table, caption=caption))
    runs.to_csv(files[2], index=False)
    summary.to_csv(files[3], index=False)
    plots = write_plots(summary, primary, out)
    _remove_stale_plots(out, [*plots, *cf_plots])
    plots += cf_plots
    meta = {
        "source": str(source),
        "metric": primary,
        "settings": settings,
        "pooled": pooled,
        "metrics": metrics,
        "shown_metrics": shown,
        "tasks": tasks,
        "plots": [p.name for p in plots],
    }
    files[4].write_text(json.dumps(meta, indent=2) + "\n")
    files += member_files + plots
    files.append(
        write_sweep_page(
            out,
            source=source,
            tasks=tasks,
            over=over,
            table=table,
            runs=runs,
            metric=primary,
            plots=plots,
            markdown=markdown,
        )
    )
    if use_wandb:
        log_to_wandb(table, summary, plots, out, meta)
    return Report(runs=runs, summary=summary, markdown=markdown, metric=primary, files=files, out=out)
