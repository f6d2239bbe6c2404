"""Seed statistics (mean and sample std per configuration), metric choice and order, the display table,
and the number formatting shared by every table and plot of the report package."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import pandas as pd

from rise_exp.core.errors import ConfigError
from rise_exp.core.results import MAIN_KEYS
from rise_exp.report.runs import BASE_COLUMNS, NAME_KEYS, SEED_KEY, TRAILING_COLUMNS

DEFAULT_METRIC = "auprc@10"
SKETCH_DIMS = ("kr", "kh", "kg")
COST_KEYS = ("index_bytes_per_row", "index_seconds", "query_seconds", "peak_rss_mb")
BYTES_KEY = "index_bytes_per_row"
DASH = "–"


# ----------------------------------------------------------------------------------------------- formatting


def is_missing(x: Any) -> bool:
    """None, NaN or infinite (any number type); other values are not missing."""
    if x is None:
        return True
    try:
        return not math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def fmt_number(x: Any) -> str:
    """Compact text for one number: 4 decimals below 10, fewer above; NaN as a dash."""
    if is_missing(x):
        return DASH
    x = float(x)
    if abs(x) < 10:
        return f"{x:.4f}"
    return f"{x:.1f}" if abs(x) < 1e5 else f"{x:.3g}"


def fmt_short(x: Any, missing: str = "n/a") -> str:
    """Three decimals, or three significant digits outside [0.01, 1000); None/NaN as ``missing``."""
    if x is None or math.isnan(float(x)):
        return missing
    x = float(x)
    if abs(x) >= 1000 or (x != 0 and abs(x) < 0.01):
        return f"{x:.3g}"
    return f"{x:.3f}"


def fmt_setting(x: Any) -> str:
    """A setting value as text: integral floats without decimals, missing as a dash."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return DASH
    if isinstance(x, float) and x.is_integer():
        return str(int(x))
    return str(x)


def fmt_mean_std(mean: Any, std: Any) -> str:
    """``mean ± std``, the std with the mean's precision; left out when undefined (one seed)."""
    m = fmt_number(mean)
    if m == DASH:
        return DASH
    if is_missing(std):
        return m
    if "e" in m:
        return f"{m} ± {float(std):.3g}"
    decimals = len(m.split(".", 1)[1]) if "." in m else 0
    return f"{m} ± {float(std):.{decimals}f}"


def spread_note(n_seeds: Sequence[Any], what: str = "error bars") -> str:
    """What a ± std mark means for these seed counts, e.g. ``error bars: ± sample std over 3 seeds``."""
    ns = sorted({int(n) for n in n_seeds if not is_missing(n) and int(n) > 0})
    if not ns or ns[-1] < 2:
        return f"{what}: none (one seed per point)"
    count = str(ns[0]) if len(ns) == 1 else f"{ns[0]}–{ns[-1]}"
    note = f"{what}: ± sample std over {count} seeds"
    return note + ("; none for 1 seed" if ns[0] == 1 else "")


# ----------------------------------------------------------------------------------------------- statistics


def _infer_metrics(df: pd.DataFrame, settings: Sequence[str]) -> list[str]:
    skip = {*BASE_COLUMNS, *TRAILING_COLUMNS, *settings}
    return [c for c in df.columns if c not in skip and pd.api.types.is_numeric_dtype(df[c])]


def summarize(
    df: pd.DataFrame,
    *,
    metrics: Sequence[str] | None = None,
    settings: Sequence[str] | None = None,
    pool: Sequence[str] = (),
) -> pd.DataFrame:
    """Mean and sample std (ddof=1) of every metric across seeds, per (task, stage, model, method, settings).

    Args:
        df: the table of :func:`rise_exp.report.runs.collect_runs`.
        metrics: metric columns (default: ``df.attrs["metrics"]``, else every numeric non-setting column).
        settings: varied-setting columns (default: ``df.attrs["settings"]``).
        pool: settings to average over as well as the seed (e.g. ``["method.seed"]``).

    Returns:
        One row per group with the group keys, ``n_seeds`` (finished runs), ``n_failed`` (other runs) and
        ``<metric>_mean`` / ``<metric>_std``. Groups whose runs all failed are kept, with NaN statistics.

    Raises:
        ConfigError: a named metric, setting or pooled column is not in ``df``.
    """
    settings = list(df.attrs.get("settings", []) if settings is None else settings)
    metrics = list(metrics if metrics is not None else df.attrs.get("metrics") or _infer_metrics(df, settings))
    unknown = [c for c in [*settings, *pool, *metrics] if c not in df.columns]
    if unknown:
        raise ConfigError(f"unknown column(s) {', '.join(unknown)}; available: {', '.join(map(str, df.columns))}")
    keys = [k for k in NAME_KEYS if k in df.columns] + [s for s in settings if s not in pool]
    ok_all = df[df["status"] == "ok"]
    dup = ok_all.duplicated([*keys, SEED_KEY, *pool])
    if dup.any():
        warnings.warn(
            f"several finished runs share a configuration and seed (jobs "
            f"{', '.join(ok_all.loc[dup, 'job'])}); each counts as a seed",
            stacklevel=2,
        )
    rows = []
    for values, group in df.groupby(keys, dropna=False, sort=False):
        ok = group[group["status"] == "ok"]
        row: dict[str, Any] = dict(zip(keys, values))
        row["n_seeds"], row["n_failed"] = len(ok), len(group) - len(ok)
        for m in metrics:
            col = pd.to_numeric(ok[m], errors="coerce").astype(float)
            row[f"{m}_mean"] = col.mean()
            row[f"{m}_std"] = col.std(ddof=1)
        rows.append(row)
    out = pd.DataFrame(rows)
    try:
        out = out.sort_values(keys, na_position="last", kind="stable", ignore_index=True)
    except TypeError:  # a setting mixes numbers and text: keep job order
        pass
    out.attrs.update(settings=[s for s in settings if s not in pool], metrics=metrics)
    return out


# ----------------------------------------------------------------------------------------------- tables


def resolve_metric(metrics: Sequence[str], requested: str | None) -> str | None:
    """The headline metric: ``requested`` (must exist), else auprc@10, else the first headline key present.

    Raises:
        ConfigError: ``requested`` is not among ``metrics``.
    """
    if requested is not None:
        if requested not in metrics:
            raise ConfigError(
                f"--metric {requested!r} is not in any metrics.json; available: {', '.join(metrics) or 'none'}"
            )
        return requested
    for name in (DEFAULT_METRIC, *MAIN_KEYS):
        if name in metrics:
            return name
    return metrics[0] if metrics else None


def display_metrics(summary: pd.DataFrame, metrics: Sequence[str], primary: str | None) -> list[str]:
    """Metrics shown in the tables: the headline one, other headline keys, then costs (those with data)."""
    order = [primary] if primary else []
    order += [m for m in (*MAIN_KEYS, *COST_KEYS) if m in metrics and m not in order]
    return [m for m in order if f"{m}_mean" in summary and summary[f"{m}_mean"].notna().any()]


def display_table(summary: pd.DataFrame, metrics: Sequence[str], settings: Sequence[str]) -> pd.DataFrame:
    """Text table: group keys (task/stage only when they vary), seeds, failures, then ``mean ± std``."""
    cols: dict[str, list[str]] = {}
    for key in NAME_KEYS:
        if key in summary and (key in ("model", "method") or summary[key].nunique(dropna=False) > 1):
            cols[key] = [fmt_setting(v) for v in summary[key]]
    for s in settings:
        cols[s] = [fmt_setting(v) for v in summary[s]]
    cols["seeds"] = [str(int(n)) for n in summary["n_seeds"]]
    if summary["n_failed"].sum() > 0:
        cols["failed"] = [str(int(n)) for n in summary["n_failed"]]
    for m in metrics:
        cols[m] = [fmt_mean_std(a, b) for a, b in zip(summary[f"{m}_mean"], summary[f"{m}_std"])]
    return pd.DataFrame(cols)
