"""Closed-loop results: selector x metric tables (mean ± std over seeds), CSV, console, budget plot."""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

ID_COLUMNS = ("selector", "budget", "seed")


def metric_columns(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Numeric result columns in first-seen order (everything but selector / budget / seed)."""
    cols: list[str] = []
    for r in rows:
        for k, v in r.items():
            if k not in ID_COLUMNS and k not in cols and isinstance(v, (int, float)) and not isinstance(v, bool):
                cols.append(k)
    return cols


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value); NaNs are ignored."""
    v = np.asarray([x for x in values if x is not None and not math.isnan(float(x))], dtype=np.float64)
    if v.size == 0:
        return float("nan"), float("nan")
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0


def aggregate(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> list[dict[str, Any]]:
    """One row per (budget, selector) in first-seen order: ``n`` seeds, ``<col>_mean`` and ``<col>_std``."""
    groups: dict[tuple[float, str], list[Mapping[str, Any]]] = {}
    for r in rows:
        groups.setdefault((float(r["budget"]), str(r["selector"])), []).append(r)
    out = []
    for (budget, selector), rs in groups.items():
        agg: dict[str, Any] = {"selector": selector, "budget": budget, "n": len(rs)}
        for c in columns:
            agg[f"{c}_mean"], agg[f"{c}_std"] = mean_std([r.get(c, float("nan")) for r in rs])
        out.append(agg)
    return out


def _fmt(x: float) -> str:
    if x is None or math.isnan(x):
        return "n/a"
    if abs(x) >= 1000 or (x != 0 and abs(x) < 0.01):
        return f"{x:.3g}"
    return f"{x:.3f}"


def cell(agg: Mapping[str, Any], col: str) -> str:
    """``mean ± std`` of one aggregated column."""
    return f"{_fmt(agg[f'{col}_mean'])} ± {_fmt(agg[f'{col}_std'])}"


def markdown_table(aggs: Sequence[Mapping[str, Any]], columns: Sequence[str],
                   base: Mapping[str, float] | None = None) -> str:
    """A GitHub Markdown table: selector, budget, seeds, then ``mean ± std`` per column.

    ``base`` (the starting model's metrics, untrained) is added as a first ``start`` row when given.
    """
    head = ["selector", "budget", "seeds", *columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * 3 + ["---:"] * len(columns)) + "|"]
    if base:
        lines.append("| start | - | - | " + " | ".join(_fmt(base[c]) if c in base else "-" for c in columns) + " |")
    for a in aggs:
        cells = " | ".join(cell(a, c) for c in columns)
        lines.append(f"| {a['selector']} | {a['budget']:g} | {a['n']} | {cells} |")
    return "\n".join(lines) + "\n"


def write_csv(path: Path, rows: Sequence[Mapping[str, Any]], aggs: Sequence[Mapping[str, Any]],
              columns: Sequence[str]) -> None:
    """Raw rows (``seed`` = the seed) followed by aggregated ones (``seed`` = ``mean`` / ``std``)."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow([*ID_COLUMNS, *columns])
        for r in rows:
            w.writerow([r["selector"], r["budget"], r["seed"], *(r.get(c, "") for c in columns)])
        for a in aggs:
            for stat in ("mean", "std"):
                w.writerow([a["selector"], a["budget"], stat, *(a[f"{c}_{stat}"] for c in columns)])


def print_table(aggs: Sequence[Mapping[str, Any]], columns: Sequence[str], title: str,
                base: Mapping[str, float] | None = None) -> None:
    """The results table on the console (rich)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for h in ("selector", "budget", "seeds"):
        table.add_column(h)
    for c in columns:
        table.add_column(c, justify="right")
    if base:
        table.add_row("start", "-", "-", *(_fmt(base[c]) if c in base else "-" for c in columns))
    for a in aggs:
        table.add_row(a["selector"], f"{a['budget']:g}", str(a["n"]), *(cell(a, c) for c in columns))
    Console(width=max(120, 24 * (3 + len(columns)))).print(table)


def plot_budget(path: Path, aggs: Sequence[Mapping[str, Any]], metric: str, base: float | None = None) -> None:
    """``metric`` (mean ± std over seeds) against the selection budget, one line per selector."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for selector in dict.fromkeys(a["selector"] for a in aggs):
        pts = sorted((a["budget"], a[f"{metric}_mean"], a[f"{metric}_std"]) for a in aggs if a["selector"] == selector)
        xs, ys, es = zip(*pts)
        ax.errorbar(xs, ys, yerr=es, marker="o", capsize=3, label=selector)
    if base is not None:
        ax.axhline(base, color="grey", linestyle="--", linewidth=1, label="start")
    ax.set_xlabel("selection budget (fraction of the pool)")
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} after continued pretraining")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def flat_metrics(aggs: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> dict[str, float]:
    """``<col>/<selector>@<budget>`` means and ``<col>_std/...`` stds; without ``@<budget>`` for a single budget."""
    single = len({a["budget"] for a in aggs}) == 1
    out: dict[str, float] = {}
    for a in aggs:
        for c in columns:
            for suffix in ([f"{a['selector']}@{a['budget']:g}"] + ([a["selector"]] if single else [])):
                out[f"{c}/{suffix}"] = a[f"{c}_mean"]
                out[f"{c}_std/{suffix}"] = a[f"{c}_std"]
    return out
