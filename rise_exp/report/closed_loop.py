"""Closed-loop results: selector x metric tables (mean ± std over seeds), CSV, console, budget plot.

Rows are the stage's per-run dicts (``selector``, ``budget``, ``seed`` and numeric results); aggregates
are one dict per (budget, selector) with ``n`` and ``<col>_mean`` / ``<col>_std``.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rise_exp.report.plots import MARKERS, new_figure, palette
from rise_exp.report.summary import fmt_short, is_missing, spread_note

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

ID_COLUMNS = ("selector", "budget", "seed")
PLOT_METRICS = ("ppl_high", "ppl_junk")  # held-out perplexity on high-quality and on junk text
METRIC_TITLES = {"ppl_high": "perplexity on held-out high-quality text", "ppl_junk": "perplexity on held-out junk text"}


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


def cell(agg: Mapping[str, Any], col: str) -> str:
    """``mean ± std`` of one aggregated column."""
    return f"{fmt_short(agg[f'{col}_mean'])} ± {fmt_short(agg[f'{col}_std'])}"


def _base_cells(base: Mapping[str, float], columns: Sequence[str]) -> list[str]:
    return [fmt_short(base[c]) if c in base else "-" for c in columns]


def markdown_table(
    aggs: Sequence[Mapping[str, Any]], columns: Sequence[str], base: Mapping[str, float] | None = None
) -> str:
    """A GitHub Markdown table: selector, budget, seeds, then ``mean ± std`` per column.

    ``base`` (the starting model's metrics, untrained) is added as a first ``start`` row when given.
    """
    head = ["selector", "budget", "seeds", *columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * 3 + ["---:"] * len(columns)) + "|"]
    if base:
        lines.append("| start | - | - | " + " | ".join(_base_cells(base, columns)) + " |")
    for a in aggs:
        cells = " | ".join(cell(a, c) for c in columns)
        lines.append(f"| {a['selector']} | {a['budget']:g} | {a['n']} | {cells} |")
    return "\n".join(lines) + "\n"


def write_csv(
    path: Path, rows: Sequence[Mapping[str, Any]], aggs: Sequence[Mapping[str, Any]], columns: Sequence[str]
) -> None:
    """Raw rows (``seed`` = the seed) followed by aggregated ones (``seed`` = ``mean`` / ``std``)."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow([*ID_COLUMNS, *columns])
        for r in rows:
            w.writerow([r["selector"], r["budget"], r["seed"], *(r.get(c, "") for c in columns)])
        for a in aggs:
            for stat in ("mean", "std"):
                w.writerow([a["selector"], a["budget"], stat, *(a[f"{c}_{stat}"] for c in columns)])


def print_table(
    aggs: Sequence[Mapping[str, Any]], columns: Sequence[str], title: str, base: Mapping[str, float] | None = None
) -> None:
    """The results table on the console (rich)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for h in ("selector", "budget", "seeds"):
        table.add_column(h)
    for c in columns:
        table.add_column(c, justify="right")
    if base:
        table.add_row("start", "-", "-", *_base_cells(base, columns))
    for a in aggs:
        table.add_row(a["selector"], f"{a['budget']:g}", str(a["n"]), *(cell(a, c) for c in columns))
    Console(width=max(120, 24 * (3 + len(columns)))).print(table)


def _has_data(aggs: Sequence[Mapping[str, Any]], metric: str) -> bool:
    return any(not is_missing(a.get(f"{metric}_mean")) for a in aggs)


def _panel(
    ax: Axes, aggs: Sequence[Mapping[str, Any]], metric: str, selectors: Sequence[str], base: float | None
) -> None:
    """One metric: points per selector on a categorical axis (one budget), else a line per selector."""
    colors = dict(zip(selectors, palette(len(selectors))))
    budgets = sorted({float(a["budget"]) for a in aggs})
    for i, selector in enumerate(selectors):
        pts = sorted(
            (float(a["budget"]), a[f"{metric}_mean"], a[f"{metric}_std"])
            for a in aggs
            if a["selector"] == selector and f"{metric}_mean" in a
        )
        if not pts:
            continue
        xs, ys, es = zip(*pts)
        style = {"color": colors[selector], "capsize": 4, "label": selector}
        if len(budgets) == 1:
            ax.errorbar([i], ys, yerr=es, fmt=MARKERS[i % len(MARKERS)], linestyle="none", markersize=8, **style)
        else:
            ax.errorbar(xs, ys, yerr=es, fmt="-" + MARKERS[i % len(MARKERS)], **style)
    if base is not None and not is_missing(base):
        ax.axhline(float(base), color="grey", linestyle="--", linewidth=1, label="start (before training)")
    if len(budgets) == 1:
        ax.set_xticks(
            range(len(selectors)),
            selectors,
            rotation=30 if len(selectors) > 4 else 0,
            ha="right" if len(selectors) > 4 else "center",
        )
        ax.set_xlim(-0.6, len(selectors) - 0.4)
        ax.set_xlabel(f"selector (budget {budgets[0]:g} of the pool)")
    else:
        ax.set_xticks(budgets, [f"{b:g}" for b in budgets])
        ax.set_xlabel("selection budget (fraction of the pool)")
    ax.set_ylabel(metric + (" (lower is better)" if metric.startswith("ppl_") else ""))
    ax.set_title(METRIC_TITLES.get(metric, metric), fontsize=10)
    ax.grid(True, axis="y", alpha=0.3)


def plot_budget(
    path: Path,
    aggs: Sequence[Mapping[str, Any]],
    metric: str = "ppl_high",
    base: float | Mapping[str, float] | None = None,
    *,
    extra: Sequence[str] = PLOT_METRICS[1:],
) -> Figure:
    """Mean ± std over seeds of ``metric`` and of each ``extra`` metric present (default ``ppl_junk``), one
    panel each, after continued pretraining; written to ``path`` (PNG).

    With one budget the selectors are categories on the x axis (one point with error bars each); with
    several, each selector is a line over the budgets. ``base`` is the starting model's value of
    ``metric`` (a number) or its metrics (a mapping, used for every panel); it is drawn as a dashed line.

    Returns:
        The figure (already saved).
    """
    metrics = [metric] + [m for m in extra if m != metric and _has_data(aggs, m)]
    bases = base if isinstance(base, Mapping) else {metric: base}
    selectors = list(dict.fromkeys(str(a["selector"]) for a in aggs))
    single = len({float(a["budget"]) for a in aggs}) == 1
    width = max(5.0, 0.7 * len(selectors) + 2.5) if single else 5.6
    fig, axes = new_figure(len(metrics), (width * len(metrics) + (0 if single else 1.6), 4.4))
    for ax, m in zip(axes, metrics):
        _panel(ax, aggs, m, selectors, bases.get(m))
    if not single:  # one legend of the selectors' lines, beside the panels so it hides no point
        fig.legend(*axes[0].get_legend_handles_labels(), loc="outside right upper", fontsize=8)
    else:  # the selectors are the x axis already: a legend only for the start line, where it is drawn
        for ax in axes:
            entries = [(h, lab) for h, lab in zip(*ax.get_legend_handles_labels()) if lab.startswith("start")]
            if entries:
                ax.legend(*zip(*entries), fontsize=8)
                break
    budget = f" (budget {aggs[0]['budget']:g})" if single and aggs else ""
    note = spread_note([a["n"] for a in aggs])
    fig.suptitle(f"after continued pretraining{budget}; {note}", fontsize=11)
    fig.savefig(path, dpi=120)
    return fig


def flat_metrics(aggs: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> dict[str, float]:
    """``<col>/<selector>@<budget>`` means and ``<col>_std/...`` stds; without ``@<budget>`` for a single budget."""
    single = len({a["budget"] for a in aggs}) == 1
    out: dict[str, float] = {}
    for a in aggs:
        for c in columns:
            for suffix in [f"{a['selector']}@{a['budget']:g}"] + ([a["selector"]] if single else []):
                out[f"{c}/{suffix}"] = a[f"{c}_mean"]
                out[f"{c}_std/{suffix}"] = a[f"{c}_std"]
    return out
