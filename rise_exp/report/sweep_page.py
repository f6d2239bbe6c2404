"""A sweep's results page (``<report dir>/report.html``): the summary table with the chance level, the plots,
and every run with its status, headline metric and a link to the run's own page."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from rise_exp.core.results import CHANCE_FILE, PAGE_FILE
from rise_exp.report.html import data_uri, write_page
from rise_exp.report.render import _right_aligned


def write_sweep_page(
    out: Path,
    *,
    source: Path,
    tasks: Sequence[str],
    over: str,
    table: pd.DataFrame,
    runs: pd.DataFrame,
    metric: str | None,
    plots: Sequence[Path],
    markdown: str,
) -> Path:
    """Write ``out/report.html``; links to run pages are relative, so the sweep folder can be moved whole."""
    chance = _chance(runs)
    return write_page(
        out / PAGE_FILE,
        "sweep.html.j2",
        title=f"Sweep report: {', '.join(tasks) or 'runs'}",
        source=str(source),
        over=over,
        columns=list(table.columns),
        right=_right_aligned(table),
        rows=table.astype(str).values.tolist(),
        metric=metric,
        chance=chance,
        plots=[{"name": p.name, "src": data_uri(p)} for p in plots if p.is_file()],
        runs=[_run_row(r, out, metric) for r in runs.to_dict("records")],
        markdown=markdown,
    )


def _chance(runs: pd.DataFrame) -> dict[str, Any] | None:
    """The chance levels of the first run that wrote them (runs of one task share them)."""
    for run_dir in runs.get("run_dir", []):
        path = Path(str(run_dir)) / CHANCE_FILE
        if path.is_file():
            try:
                return json.loads(path.read_text())
            except ValueError:
                continue
    return None


def _run_row(rec: dict[str, Any], out: Path, metric: str | None) -> dict[str, Any]:
    page = Path(str(rec.get("run_dir", ""))) / PAGE_FILE
    value = rec.get(metric) if metric else None
    return {
        "job": rec.get("job"),
        "status": rec.get("status"),
        "method": rec.get("method"),
        "seed": rec.get("seed"),
        "value": None if value is None or pd.isna(value) else float(value),
        "overrides": rec.get("overrides") or "",
        "error": rec.get("error") if isinstance(rec.get("error"), str) else None,
        "link": os.path.relpath(page, out) if page.is_file() else None,
    }
