"""Writing and printing run results."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rise_exp.core.files import write_atomic

#: Each ensemble member's metrics (the attribute stage with ``stage.members=true``; read by the report).
MEMBERS_FILE = "members.csv"
#: The protocol's metrics under random rankings (the attribute stage; read by the results page).
CHANCE_FILE = "chance.json"
#: The results page every run writes (rise_exp/report/page.py).
PAGE_FILE = "report.html"
#: What stages write as a run's result (globs, relative to the run dir).
RESULT_FILES = (
    "metrics.json",
    MEMBERS_FILE,
    CHANCE_FILE,
    PAGE_FILE,
    "explain.jsonl",
    "scores.npy",
    "topk.jsonl",
    "values.npy",
    "values_*.npy",
    "selection.jsonl",
    "selections.jsonl",
)
STALE_SUFFIX = ".stale"
MAIN_KEYS = ("auprc@5", "auprc@10", "auprc@50", "auroc@10", "p@10", "auprc", "auroc", "p@10%", "p@25%")


def _clean(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if hasattr(v, "item"):
        return _clean(v.item())
    return v


def write_json(path: Path, obj: Mapping[str, Any]) -> None:
    """Write JSON atomically (NaN becomes null; a failed write leaves no temporary file)."""
    text = (json.dumps({k: _clean(v) for k, v in obj.items()}, indent=2, sort_keys=True) + "\n").encode()
    write_atomic(Path(path), lambda fh: fh.write(text))


def retire_results(run_dir: Path) -> list[str]:
    """Rename an earlier run's results in ``run_dir`` to ``<name>.stale`` (nothing is deleted).

    A run starting in a directory that already holds results sets them aside first, so that a run that
    then fails or is refused never leaves an old ``metrics.json`` next to its ``status.json``. Returns
    the names set aside.
    """
    moved = []
    for pattern in RESULT_FILES:
        for path in sorted(Path(run_dir).glob(pattern)):
            if path.is_file():
                os.replace(path, path.with_name(path.name + STALE_SUFFIX))
                moved.append(path.name)
    return moved


#: Costs shown under the headline metrics (everything else stays in metrics.json).
COST_KEYS = ("index_seconds", "index_bytes_per_row", "query_seconds", "value_seconds", "peak_rss_mb")


def print_metrics(metrics: Mapping[str, Any], title: str, headline: Sequence[str] | None = None) -> None:
    """A results table on the console: the headline metrics, then the costs; the rest is in metrics.json.

    Args:
        metrics: Flat metrics.
        title: Table title.
        headline: The keys to show first (default: the protocol's :data:`MAIN_KEYS` that are present).
    """
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    head = [k for k in (headline if headline is not None else MAIN_KEYS) if k in metrics]
    keys = head + [k for k in COST_KEYS if k in metrics and k not in head]
    for k in keys:
        v = metrics[k]
        table.add_row(k, f"{v:.4f}" if isinstance(v, float) else str(v))
    Console().print(table)


def print_files(run_dir: Path, names: list[str], index: str | None = None) -> None:
    """The run directory, the files a stage wrote there (those that exist) and the index it used."""
    from rich.console import Console

    present = [n for n in names if (Path(run_dir) / n).exists()]
    text = f"run directory: {run_dir}\n  wrote: {', '.join(present)}"
    if index:
        text += f"\n  index: {index}  (ask it again: python -m rise_exp stage=query stage.index={index} ...)"
    Console().print(text, highlight=False, soft_wrap=True)
