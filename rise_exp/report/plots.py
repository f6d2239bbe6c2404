"""The report's plots: the headline metric against index size, and the sketch-dimension ablations.

Every plot says what its error marks are (``± sample std over N seeds``) in its title or legend. Figures
are made without pyplot (no global backend switch); pass ``ax`` to draw into an existing figure.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from rise_exp.report.summary import BYTES_KEY, DASH, SKETCH_DIMS, fmt_setting, spread_note

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")
_X_MARGIN = 1.3  # the bytes axis extends this factor beyond the smallest and largest index


def new_figure(ncols: int = 1, figsize: tuple[float, float] = (6.4, 4.4)) -> tuple[Figure, list[Axes]]:
    """A constrained-layout figure with an Agg canvas and ``ncols`` axes side by side (no pyplot)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, [fig.add_subplot(1, ncols, i + 1) for i in range(ncols)]


def _new_axes(ax: Axes | None, figsize: tuple[float, float] = (6.4, 4.4)) -> tuple[Figure, Axes]:
    if ax is not None:
        return ax.figure, ax  # type: ignore[return-value]
    fig, (ax,) = new_figure(1, figsize)
    return fig, ax


def palette(n: int) -> list[Any]:
    """``n`` colours: tab10, then the light tab20 shades, so neighbours in a list differ in hue."""
    from matplotlib import colormaps

    tab20 = colormaps["tab20"].colors
    colors = list(tab20[0::2]) + list(tab20[1::2])
    return [colors[i % len(colors)] for i in range(n)]


def _series_keys(summary: pd.DataFrame) -> list[str]:
    keys = [k for k in ("task", "stage") if k in summary and summary[k].nunique(dropna=False) > 1]
    return keys + [k for k in ("model", "method") if k in summary]


def _label(row: Mapping[str, Any], keys: Sequence[str]) -> str:
    parts = {k: fmt_setting(row[k]) for k in keys if fmt_setting(row[k]) != DASH}
    head = parts.pop("method", "")
    model = parts.pop("model", "")
    rest = ", ".join(f"{k}={v}" for k, v in parts.items())
    text = f"{head} ({model})" if model else head
    return f"{text}, {rest}" if rest else text


def _name_settings(data: pd.DataFrame, settings: Sequence[str]) -> list[str]:
    """Text settings that name each row on their own (e.g. ``ablation=kr32``, a config-group choice)."""
    return [
        s
        for s in settings
        if s in data
        and pd.to_numeric(data[s], errors="coerce").isna().all()
        and data[s].nunique(dropna=False) == len(data)
    ]


def _point_tags(data: pd.DataFrame, settings: Sequence[str]) -> list[str]:
    """A short name per row: its naming setting's value, else ``k=v`` of the settings that vary."""
    names = _name_settings(data, settings)
    if names:
        return [fmt_setting(v) for v in data[names[0]]]
    varied = [s for s in settings if s in data and data[s].nunique(dropna=False) > 1]
    return [
        ", ".join(f"{s}={fmt_setting(row[s])}" for s in varied if fmt_setting(row[s]) != DASH)
        for _, row in data.iterrows()
    ]


def fmt_bytes(x: float) -> str:
    """``512 B``, ``48 KiB``, ``1.5 MiB``."""
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(x) >= size:
            return f"{x / size:.3g} {unit}"
    return f"{x:.3g} B"


def _log2_bytes_axis(ax: Axes, xs: np.ndarray) -> None:
    """Log-2 x axis in bytes with a margin; ticks at powers of two (the data's values if too few)."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    lo, hi = float(xs.min()) / _X_MARGIN, float(xs.max()) * _X_MARGIN
    ticks = [2.0**k for k in range(math.ceil(math.log2(lo)), math.floor(math.log2(hi)) + 1)]
    if len(ticks) < 2:
        ticks = sorted(set(xs.tolist()))
    ax.set_xscale("log", base=2)
    ax.set_xlim(lo, hi)
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: fmt_bytes(v)))
    ax.xaxis.set_minor_locator(NullLocator())


def _dodge(xs: np.ndarray, span: float) -> tuple[np.ndarray, bool]:
    """Spread points that share an x value slightly apart on a log axis; also whether any moved."""
    out = xs.astype(float).copy()
    step = 0.025 * span  # in log2 units
    moved = False
    for value in np.unique(xs):
        idx = np.flatnonzero(xs == value)
        if len(idx) > 1:
            moved = True
            out[idx] = value * 2.0 ** (step * (np.arange(len(idx)) - (len(idx) - 1) / 2))
    return out, moved


def plot_metric_vs_bytes(
    summary: pd.DataFrame, metric: str, ax: Axes | None = None, settings: Sequence[str] | None = None
) -> Figure | None:
    """``metric`` (mean, ± std error bars) against index bytes per row on a log axis; one point per row.

    Points are not joined (the rows are separate variants); each has its own colour and marker and a
    legend entry naming it (its variant, or method and settings), the legend sorted by ``metric`` from
    high to low. Points of equal size are spread slightly sideways so their error bars stay visible.

    Returns:
        The figure, or None when no row has both the metric and a positive byte count.
    """
    need = [f"{metric}_mean", f"{BYTES_KEY}_mean"]
    if not all(c in summary for c in need):
        return None
    data = summary[summary[need[0]].notna() & (summary[need[1]] > 0)]
    if data.empty:
        return None
    settings = list(summary.attrs.get("settings", []) if settings is None else settings)
    keys = _series_keys(data)
    series = [_label(row, keys) for _, row in data.iterrows()]
    tags = _point_tags(data, settings)
    single = len(set(series)) == 1
    labels = [(t or s) if single else (f"{s}: {t}" if t else s) for s, t in zip(series, tags)]
    series_marker = {s: MARKERS[i % len(MARKERS)] for i, s in enumerate(dict.fromkeys(series))}

    ys = data[need[0]].to_numpy(float)
    errs = data[f"{metric}_std"].fillna(0.0).to_numpy(float) if f"{metric}_std" in data else np.zeros(len(ys))
    xs = data[need[1]].to_numpy(float)
    span = math.log2(xs.max() * _X_MARGIN**2 / xs.min())  # the axis' width in log2 units
    order = np.argsort(-ys, kind="stable")
    xs_plot, dodged = _dodge(xs[order], span)
    many = len(data) > 4
    colors = palette(len(data))
    fig, ax = _new_axes(ax, (8.6, 4.8) if many else (6.4, 4.4))
    for rank, (i, x) in enumerate(zip(order, xs_plot)):
        marker = MARKERS[rank % len(MARKERS)] if single else series_marker[series[i]]
        ax.errorbar(
            [x],
            [ys[i]],
            yerr=[errs[i]],
            fmt=marker,
            linestyle="none",
            color=colors[rank],
            capsize=3,
            markersize=7,
            label=labels[i],
        )
    _log2_bytes_axis(ax, xs)
    ax.set_xlabel("index bytes per row (log scale" + ("; equal sizes spread slightly apart)" if dodged else ")"))
    ax.set_ylabel(metric)
    n_seeds = list(data["n_seeds"]) if "n_seeds" in data else []
    ax.set_title(f"{metric} vs. index size\n{spread_note(n_seeds)}", fontsize=11)
    ax.grid(True, alpha=0.3)
    head = [series[0]] if single and any(tags) else []
    head += [f"sorted by {metric}, high to low"] if len(data) > 1 else []
    where = {"loc": "upper left", "bbox_to_anchor": (1.02, 1.0), "borderaxespad": 0.0} if many else {"loc": "best"}
    ax.legend(fontsize=8, title="\n".join(head) or None, title_fontsize=8, **where)
    return fig


def plot_ablation(
    summary: pd.DataFrame, setting: str, metric: str, ax: Axes | None = None, settings: Sequence[str] | None = None
) -> Figure | None:
    """``metric`` against one sketch dimension: a line with a ±std band per combination of the others.

    The legend's title says what the band is (``band: ± sample std over N seeds``); settings equal on
    every line are named once in the title instead of in each legend entry.

    Returns:
        The figure, or None when fewer than two values of ``setting`` have data.
    """
    col = f"{metric}_mean"
    if setting not in summary or col not in summary:
        return None
    x_all = pd.to_numeric(summary[setting], errors="coerce")
    data = summary[x_all.notna() & summary[col].notna()].assign(_x=x_all)
    if data["_x"].nunique() < 2:
        return None
    settings = list(summary.attrs.get("settings", []) if settings is None else settings)
    # A line joins runs equal in every other *value* setting; a label that names the variant itself
    # (e.g. ablation=kr32, a config-group choice) would otherwise make every run a line of its own.
    others = [s for s in settings if s != setting and s in data]
    labels = [
        s
        for s in others
        if pd.to_numeric(data[s], errors="coerce").isna().all()
        and data.groupby(s)["_x"].nunique().max() <= 1
        and data[s].nunique() == len(data)
    ]
    series_keys = _series_keys(data)
    values = [s for s in others if s not in labels]
    groups = [g.sort_values("_x") for _, g in data.groupby(series_keys + values, dropna=False, sort=False)]
    groups = [g for g in groups if g["_x"].nunique() >= 2] or groups
    shown = pd.concat(groups)
    fixed = [s for s in values if shown[s].nunique(dropna=False) == 1]
    keys = series_keys + [s for s in values if s not in fixed]
    fig, ax = _new_axes(ax)
    for grp in groups:
        x, y = grp["_x"].to_numpy(float), grp[col].to_numpy(float)
        s = grp[f"{metric}_std"].fillna(0.0).to_numpy(float)
        (line,) = ax.plot(x, y, marker="o", label=_label(grp.iloc[0], keys))
        ax.fill_between(x, y - s, y + s, color=line.get_color(), alpha=0.2)
    xs = np.sort(data["_x"].unique())
    if (xs > 0).all():
        ax.set_xscale("log", base=2)
    ax.set_xticks(xs, [fmt_setting(float(v)) for v in xs])
    ax.set_xlabel(setting)
    ax.set_ylabel(metric)
    const = ", ".join(f"{s}={fmt_setting(shown[s].iloc[0])}" for s in fixed if fmt_setting(shown[s].iloc[0]) != DASH)
    ax.set_title(f"{metric} vs. {setting}" + (f"\nother settings: {const}" if const else ""), fontsize=11)
    ax.grid(True, alpha=0.3)
    n_seeds = shown["n_seeds"] if "n_seeds" in shown else []
    ax.legend(fontsize=8, title=spread_note(list(n_seeds), what="band"), title_fontsize=8)
    return fig


def _plot_name(metric: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", metric.split("@", 1)[0]).strip("_") or "metric"


def write_plots(summary: pd.DataFrame, metric: str | None, out: Path) -> list[Path]:
    """Write the plots whose data exist: ``<metric>_vs_bytes.png`` and ``ablation_<kr|kh|kg>.png``."""
    if metric is None:
        return []
    paths: list[Path] = []
    figs = [(out / f"{_plot_name(metric)}_vs_bytes.png", plot_metric_vs_bytes(summary, metric))]
    figs += [
        (out / f"ablation_{s}.png", plot_ablation(summary, s, metric))
        for s in SKETCH_DIMS
        if s in summary.attrs.get("settings", [])
    ]
    for path, fig in figs:
        if fig is not None:
            fig.savefig(path, dpi=120)
            paths.append(path)
    return paths
