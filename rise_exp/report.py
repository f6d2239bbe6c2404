"""Results report over Hydra run directories: a per-job table, a seed summary, Markdown/LaTeX/CSV and plots.

    python -m rise_exp.report multirun/2025-01-01_12-00-00 [--out DIR] [--metric auprc@10] [--no-wandb]

The input is a Hydra multirun directory (``multirun.yaml`` plus one job dir per run), a single run dir, or
any tree of run dirs. A run dir holds ``config.yaml`` (or Hydra's ``.hydra/config.yaml``), optionally
``.hydra/overrides.yaml``, ``status.json`` and ``metrics.json``. Failed and unfinished jobs are kept in
every table and listed in the report; they never vanish from it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import yaml

from rise_exp.errors import ConfigError, DataError, RiseError
from rise_exp.results import MAIN_KEYS

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

DEFAULT_METRIC = "auprc@10"
DEFAULT_OUT = "outputs/report"
NAME_KEYS = ("task", "stage", "model", "method")  # config groups whose ``name`` is a column of its own
SEED_KEY = "seed"
BASE_COLUMNS = ("job", "status", "error", *NAME_KEYS, SEED_KEY)
TRAILING_COLUMNS = ("overrides", "run_dir")
SKETCH_DIMS = ("kr", "kh", "kg")
COST_KEYS = ("index_bytes_per_row", "index_seconds", "query_seconds", "peak_rss_mb")
BYTES_KEY = "index_bytes_per_row"
SKIP_DIRS = (".hydra", "wandb", "csv", "lightning_logs", "__pycache__")
DASH = "–"


# ----------------------------------------------------------------------------------------------- reading


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise DataError(f"cannot read YAML file {path}: {e}") from e


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise DataError(f"cannot read JSON file {path}: {e}") from e


def _is_run_dir(path: Path) -> bool:
    return (path / "config.yaml").is_file() or (path / ".hydra").is_dir()


def _natural_key(text: str) -> list[Any]:
    return [int(tok) if tok.isdigit() else tok for tok in re.split(r"(\d+)", text)]


def find_run_dirs(root: Path) -> list[Path]:
    """Every run dir at or below ``root``; numbered job dirs of a multirun count even when still empty.

    Args:
        root: a run dir, a Hydra multirun dir, or a directory tree holding either.

    Returns:
        The run dirs in natural order (``2`` before ``10``).
    """
    if _is_run_dir(root):
        return [root]
    found: list[Path] = []
    for dirpath, dirnames, _ in os.walk(root):
        here = Path(dirpath)
        is_sweep = (here / "multirun.yaml").is_file()
        keep = []
        for name in dirnames:
            sub = here / name
            if name in SKIP_DIRS or name.startswith("."):
                continue
            if _is_run_dir(sub) or (is_sweep and name.isdigit()):
                found.append(sub)
            else:
                keep.append(name)
        dirnames[:] = keep
    return sorted(found, key=lambda p: _natural_key(p.relative_to(root).as_posix()))


def _lookup(cfg: Any, dotted: str) -> tuple[bool, Any]:
    node = cfg
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False, None
        node = node[part]
    return True, node


def _parse_override(text: str) -> tuple[str, str] | None:
    """``+method.kr=64`` -> ``("method.kr", "64")``; ``model@x=y`` -> ``("model", "y")``; deletions -> None."""
    if "=" not in text or text.startswith("~"):
        return None
    key, value = text.split("=", 1)
    key = key.lstrip("+").split("@", 1)[0].strip()
    return (key, value.strip()) if key else None


def _flat_metrics(obj: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """Numeric leaves of a metrics dict (nested dicts joined with ``/``); null becomes NaN."""
    out: dict[str, float] = {}
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_flat_metrics(value, prefix=f"{name}/"))
        elif value is None:
            out[name] = math.nan
        elif isinstance(value, (bool, int, float)):
            out[name] = float(value)
    return out


@dataclass
class RunRecord:
    """What one run dir says about itself."""

    job: str
    path: Path
    status: str
    error: str | None
    config: dict[str, Any]
    overrides: list[str]
    metrics: dict[str, float] = field(default_factory=dict)


def read_run(path: Path, job: str) -> RunRecord:
    """Read one run dir's config, overrides, status and metrics.

    Status rules: ``status.json`` decides when present; a run with only ``metrics.json`` is ok; a run
    with neither is ``incomplete``, as is one that says ok but has no metrics.

    Raises:
        DataError: a file exists but cannot be parsed, or the config lacks a ``<group>.name``.
    """
    cfg_path = path / "config.yaml"
    if not cfg_path.is_file():
        cfg_path = path / ".hydra" / "config.yaml"
    config: dict[str, Any] = {}
    if cfg_path.is_file():
        loaded = _read_yaml(cfg_path)
        if not isinstance(loaded, Mapping):
            raise DataError(f"{cfg_path}: expected a mapping at the top level, got {type(loaded).__name__}")
        config = dict(loaded)
        for key in NAME_KEYS:
            if not _lookup(config, f"{key}.name")[0]:
                raise DataError(f"{cfg_path}: missing setting {key}.name")
    ov_path = path / ".hydra" / "overrides.yaml"
    overrides = [str(o) for o in (_read_yaml(ov_path) or [])] if ov_path.is_file() else []

    metrics_path, status_path = path / "metrics.json", path / "status.json"
    metrics: dict[str, float] = {}
    if metrics_path.is_file():
        raw = _read_json(metrics_path)
        if not isinstance(raw, Mapping):
            raise DataError(f"{metrics_path}: expected a JSON object of metrics")
        metrics = _flat_metrics(raw)
    error: str | None = None
    if status_path.is_file():
        st = _read_json(status_path)
        if not isinstance(st, Mapping) or "status" not in st:
            raise DataError(f"{status_path}: expected a JSON object with a 'status' key")
        status = str(st["status"])
        error = None if st.get("error") is None else str(st["error"])
        if status == "ok" and not metrics_path.is_file():
            status, error = "incomplete", "status.json says ok but metrics.json is missing"
    elif metrics_path.is_file():
        status = "ok"
    else:
        status = "incomplete"
        error = "no status.json and no metrics.json (still running, or killed)"
    if not config and status == "ok":
        status, error = "incomplete", "no config.yaml"
    return RunRecord(job=job, path=path, status=status, error=error, config=config, overrides=overrides,
                     metrics=metrics)


def _setting_value(rec: RunRecord, key: str) -> Any:
    """A setting's value for one job: the resolved config first, the override's text otherwise."""
    found, value = _lookup(rec.config, key)
    raw = dict(kv for o in rec.overrides if (kv := _parse_override(o)) is not None).get(key)
    if found and isinstance(value, Mapping):  # a config-group choice
        value = value.get("name", raw)
    elif not found:
        value = None if raw is None else yaml.safe_load(raw)
    if isinstance(value, (list, dict)):
        value = json.dumps(value, sort_keys=True)
    return value


def _override_keys(records: Sequence[RunRecord]) -> set[str]:
    return {kv[0] for rec in records for o in rec.overrides if (kv := _parse_override(o)) is not None}


def _varied_settings(records: Sequence[RunRecord]) -> dict[str, str]:
    """Override keys (other than seed and the named groups) whose values differ between jobs -> column."""
    keys: list[str] = []
    for rec in records:
        for o in rec.overrides:
            kv = _parse_override(o)
            if kv and kv[0] not in keys and kv[0] != SEED_KEY and kv[0] not in NAME_KEYS:
                keys.append(kv[0])
    # settings a config group (e.g. ablation=kr32) changed without naming them: differing method values
    for rec in records:
        method = rec.config.get("method") if isinstance(rec.config, Mapping) else None
        for k, v in (method or {}).items():
            key = f"method.{k}"
            if key not in keys and key != f"method.{SEED_KEY}" and not isinstance(v, (Mapping, list)):
                keys.append(key)
    varied = [k for k in keys if len({repr(_setting_value(r, k)) for r in records}) > 1]
    if len({repr(_setting_value(r, "method.name")) for r in records}) > 1:  # keep per-method values only
        varied = [k for k in varied if not k.startswith("method.") or k in _override_keys(records)]
    short = [k.removeprefix("method.") for k in varied]
    columns: dict[str, str] = {}
    for key, name in zip(varied, short):
        clash = name in BASE_COLUMNS or name in TRAILING_COLUMNS or short.count(name) > 1
        columns[key] = key if clash else name
    return columns


def collect_runs(path: str | Path) -> pd.DataFrame:
    """One row per job: job, status, error, task, stage, model, method, seed, varied settings, metrics.

    Varied settings are the override keys whose values differ between jobs, seed excluded; a key
    ``method.X`` becomes column ``X`` unless that name is taken. ``df.attrs`` records ``settings`` and
    ``metrics`` (column lists) and ``sweep`` (the multirun's override list, when known).

    Args:
        path: a run dir, a Hydra multirun dir, or a tree of run dirs.

    Raises:
        DataError: the path does not exist, holds no run dir, or a run's files are malformed.
    """
    root = Path(path)
    if not root.is_dir():
        raise DataError(f"report input {root} is not a directory")
    run_dirs = find_run_dirs(root)
    if not run_dirs:
        raise DataError(f"no runs found under {root}: no directory with a config.yaml, a .hydra/ folder, "
                        f"or a numbered job dir of a multirun")
    records = [read_run(p, p.name if p == root else p.relative_to(root).as_posix()) for p in run_dirs]
    settings = _varied_settings(records)
    metric_names: list[str] = []
    for rec in records:
        metric_names += [m for m in rec.metrics if m not in metric_names]
    taken = set(BASE_COLUMNS) | set(TRAILING_COLUMNS) | set(settings.values())
    metric_cols = {m: (f"metrics.{m}" if m in taken else m) for m in metric_names}

    rows = []
    for rec in records:
        row: dict[str, Any] = {"job": rec.job, "status": rec.status, "error": rec.error}
        for key in NAME_KEYS:
            row[key] = _lookup(rec.config, f"{key}.name")[1]
        row[SEED_KEY] = _setting_value(rec, SEED_KEY)
        row.update({col: _setting_value(rec, key) for key, col in settings.items()})
        row.update({metric_cols[m]: rec.metrics.get(m, math.nan) for m in metric_names})
        row["overrides"] = " ".join(rec.overrides)
        row["run_dir"] = str(rec.path)
        rows.append(row)
    df = pd.DataFrame(rows, columns=[*BASE_COLUMNS, *settings.values(), *metric_cols.values(), *TRAILING_COLUMNS])
    df.attrs.update(settings=list(settings.values()), metrics=list(metric_cols.values()), sweep=_sweep(root))
    return df


def _sweep(root: Path) -> list[str]:
    path = root / "multirun.yaml"
    if not path.is_file():
        return []
    found, task = _lookup(_read_yaml(path), "hydra.overrides.task")
    return [str(o) for o in task] if found and isinstance(task, list) else []


def check_tasks(df: pd.DataFrame, allow_mixed_tasks: bool = False) -> list[str]:
    """The tasks present; raise when there are several and mixing is not allowed.

    Raises:
        ConfigError: runs of more than one task were found and ``allow_mixed_tasks`` is false.
    """
    counts = df["task"].dropna().value_counts().sort_index()
    if len(counts) > 1 and not allow_mixed_tasks:
        found = ", ".join(f"{t} ({n} runs)" for t, n in counts.items())
        raise ConfigError(f"runs of different tasks were found: {found}; report one task at a time "
                          f"or pass --allow-mixed-tasks")
    return [str(t) for t in counts.index]


# ----------------------------------------------------------------------------------------------- summary


def _infer_metrics(df: pd.DataFrame, settings: Sequence[str]) -> list[str]:
    skip = {*BASE_COLUMNS, *TRAILING_COLUMNS, *settings}
    return [c for c in df.columns if c not in skip and pd.api.types.is_numeric_dtype(df[c])]


def summarize(df: pd.DataFrame, *, metrics: Sequence[str] | None = None, settings: Sequence[str] | None = None,
              pool: Sequence[str] = ()) -> pd.DataFrame:
    """Mean and sample std (ddof=1) of every metric across seeds, per (task, stage, model, method, settings).

    Args:
        df: the table of :func:`collect_runs`.
        metrics: metric columns (default: ``df.attrs["metrics"]``, else every numeric non-setting column).
        settings: varied-setting columns (default: ``df.attrs["settings"]``).
        pool: settings to average over as well as the seed (e.g. ``["method.seed"]``).

    Returns:
        One row per group with the group keys, ``n_seeds`` (finished runs), ``n_failed`` (other runs) and
        ``<metric>_mean`` / ``<metric>_std``. Groups whose runs all failed are kept, with NaN statistics.
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
        warnings.warn(f"several finished runs share a configuration and seed (jobs "
                      f"{', '.join(ok_all.loc[dup, 'job'])}); each counts as a seed", stacklevel=2)
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


def fmt_number(x: Any) -> str:
    """Compact text for one number: 4 decimals below 10, fewer above; NaN as a dash."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return DASH
    x = float(x)
    if abs(x) < 10:
        return f"{x:.4f}"
    return f"{x:.1f}" if abs(x) < 1e5 else f"{x:.3g}"


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
    if std is None or not math.isfinite(float(std)):
        return m
    if "e" in m:
        return f"{m} ± {float(std):.3g}"
    decimals = len(m.split(".", 1)[1]) if "." in m else 0
    return f"{m} ± {float(std):.{decimals}f}"


def resolve_metric(metrics: Sequence[str], requested: str | None) -> str | None:
    """The headline metric: ``requested`` (must exist), else auprc@10, else the first headline key present.

    Raises:
        ConfigError: ``requested`` is not among ``metrics``.
    """
    if requested is not None:
        if requested not in metrics:
            raise ConfigError(f"--metric {requested!r} is not in any metrics.json; available: "
                              f"{', '.join(metrics) or 'none'}")
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


def to_markdown(table: pd.DataFrame) -> str:
    """A GitHub Markdown table; numeric columns right-aligned."""
    align = ["right" if (c in ("seeds", "failed") or _is_numeric_text(table[c])) else "left" for c in table.columns]
    return table.to_markdown(index=False, colalign=align)


def _is_numeric_text(col: pd.Series) -> bool:
    vals = [v for v in col if v != DASH]
    return bool(vals) and all(re.fullmatch(r"-?[\d.]+(e[+-]?\d+)?( ± [\d.]+(e[+-]?\d+)?)?", v) for v in vals)


_TEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def tex_escape(text: str) -> str:
    """Escape LaTeX specials; ``±`` becomes ``$\\pm$`` and the dash ``--``."""
    out = "".join(_TEX_SPECIAL.get(ch, ch) for ch in text)
    return out.replace("±", r"$\pm$").replace(DASH, "--")


def to_latex(table: pd.DataFrame, caption: str = "") -> str:
    """A booktabs ``tabular`` (``\\toprule``/``\\midrule``/``\\bottomrule``) rendered by pandas' Styler."""
    esc = table.map(tex_escape)
    esc.columns = [tex_escape(str(c)) for c in table.columns]
    spec = "".join("r" if (c in ("seeds", "failed") or _is_numeric_text(table[c])) else "l" for c in table.columns)
    body = esc.style.hide(axis="index").to_latex(hrules=True, column_format=spec)
    head = "% Generated by rise_exp.report; needs \\usepackage{booktabs}.\n"
    return head + (f"% {caption}\n" if caption else "") + body


# ----------------------------------------------------------------------------------------------- plots


_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")


def _new_axes(ax: Axes | None) -> tuple[Figure, Axes]:
    if ax is not None:
        return ax.figure, ax  # type: ignore[return-value]
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.4), layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


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


def plot_metric_vs_bytes(summary: pd.DataFrame, metric: str, ax: Axes | None = None,
                         settings: Sequence[str] | None = None) -> Figure | None:
    """``metric`` (mean, std error bars) against index bytes per row on a log axis; one marker per
    (method, model), points of the same series joined and labelled with their settings.

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
    fig, ax = _new_axes(ax)
    for i, (_, grp) in enumerate(data.groupby(keys, dropna=False, sort=False)):
        grp = grp.sort_values(need[1])
        yerr = grp[f"{metric}_std"].fillna(0.0).to_numpy()
        fmt = _MARKERS[i % len(_MARKERS)] + ("-" if len(grp) > 1 else "")
        ax.errorbar(grp[need[1]], grp[need[0]], yerr=yerr, fmt=fmt, capsize=3, markersize=7,
                    label=_label(grp.iloc[0], keys))
        if len(grp) > 1:
            for _, row in grp.iterrows():
                tag = ", ".join(f"{s}={fmt_setting(row[s])}" for s in settings if fmt_setting(row[s]) != DASH)
                ax.annotate(tag, (row[need[1]], row[need[0]]), textcoords="offset points", xytext=(4, 4),
                            fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("index bytes per row (log scale)")
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} vs. index size")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def plot_ablation(summary: pd.DataFrame, setting: str, metric: str, ax: Axes | None = None,
                  settings: Sequence[str] | None = None) -> Figure | None:
    """``metric`` against one sketch dimension: a line with a ±std band per combination of the others.

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
    labels = [s for s in others if pd.to_numeric(data[s], errors="coerce").isna().all()
              and data.groupby(s)["_x"].nunique().max() <= 1 and data[s].nunique() == len(data)]
    keys = _series_keys(data) + [s for s in others if s not in labels]
    groups = [g.sort_values("_x") for _, g in data.groupby(keys, dropna=False, sort=False)]
    groups = [g for g in groups if g["_x"].nunique() >= 2] or groups
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
    ax.set_title(f"{metric} vs. {setting}")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def _plot_name(metric: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", metric.split("@", 1)[0]).strip("_") or "metric"


def write_plots(summary: pd.DataFrame, metric: str | None, out: Path) -> list[Path]:
    """Write the plots whose data exist: ``<metric>_vs_bytes.png`` and ``ablation_<kr|kh|kg>.png``."""
    if metric is None:
        return []
    paths: list[Path] = []
    figs = [(out / f"{_plot_name(metric)}_vs_bytes.png", plot_metric_vs_bytes(summary, metric))]
    figs += [(out / f"ablation_{s}.png", plot_ablation(summary, s, metric)) for s in SKETCH_DIMS
             if s in summary.attrs.get("settings", [])]
    for path, fig in figs:
        if fig is not None:
            fig.savefig(path, dpi=120)
            paths.append(path)
    return paths


# ----------------------------------------------------------------------------------------------- W&B


def log_to_wandb(table: pd.DataFrame, summary: pd.DataFrame, plots: Sequence[Path], out: Path,
                 config: Mapping[str, Any]) -> bool:
    """Log the report table and the numeric summary (``wandb.Table``) and the plots to an offline W&B run
    under ``out``; warn and carry on when wandb is missing or fails.

    Returns:
        Whether the run was written.
    """
    try:
        import wandb
    except ImportError as e:
        warnings.warn(f"wandb is not importable ({e}); skipping the W&B log", stacklevel=2)
        return False
    os.environ.setdefault("WANDB_SILENT", "true")
    try:
        run = wandb.init(mode="offline", dir=str(out), project="rise-exp", job_type="report", config=dict(config))
        try:
            stats = summary.astype(object).where(summary.notna(), None)
            payload: dict[str, Any] = {"report": wandb.Table(dataframe=table.astype(str)),
                                       "summary": wandb.Table(dataframe=stats)}
            payload.update({p.stem: wandb.Image(str(p)) for p in plots})
            run.log(payload)
        finally:
            run.finish()
    except Exception as e:  # an optional sink: the report files are already written
        warnings.warn(f"W&B logging failed ({type(e).__name__}: {e}); the report files are written", stacklevel=2)
        return False
    return True


# ----------------------------------------------------------------------------------------------- report


@dataclass
class Report:
    """What :func:`write_report` produced."""

    runs: pd.DataFrame
    summary: pd.DataFrame
    markdown: str
    metric: str | None
    files: list[Path]


def _failed_section(runs: pd.DataFrame) -> str:
    bad = runs[runs["status"] != "ok"]
    lines = ["## Failed runs", ""]
    if bad.empty:
        return "\n".join([*lines, "None: every run finished."])
    for _, r in bad.iterrows():
        err = " ".join(str(r["error"] or "no error message").split())
        lines.append(f"- `{r['job']}` ({r['overrides'] or 'no overrides'}): **{r['status']}**: {err}")
    return "\n".join(lines)


def render_markdown(runs: pd.DataFrame, table: pd.DataFrame, source: Path, tasks: Sequence[str]) -> str:
    """The full report.md: header, the mean ± std table and the failed-runs section."""
    stages = sorted(map(str, runs["stage"].dropna().unique()))
    title = f"# Results: task {', '.join(tasks) or '?'}, stage {', '.join(stages) or '?'}"
    counts = runs["status"].value_counts()
    count_text = ", ".join(f"{n} {s}" for s, n in counts.items())
    sweep = runs.attrs.get("sweep") or []
    lines = [title, "", f"Source: `{source}`; {len(runs)} runs: {count_text}."]
    if sweep:
        lines.append(f"Sweep: `{' '.join(sweep)}`.")
    lines += ["Cells are mean ± sample std over seeds; `seeds` counts the finished runs of each row.", "",
              to_markdown(table), "", _failed_section(runs), ""]
    return "\n".join(lines)


def _remove_stale_plots(out: Path, keep: Sequence[Path]) -> None:
    for path in [*out.glob("*_vs_bytes.png"), *out.glob("ablation_*.png")]:
        if path not in keep:
            path.unlink()


def write_report(path: str | Path, out: str | Path = DEFAULT_OUT, *, metric: str | None = None,
                 allow_mixed_tasks: bool = False, use_wandb: bool = True) -> Report:
    """Collect the runs under ``path`` and write report.md, report.tex, runs.csv, summary.csv,
    report.json (column roles, for the notebook) and the plots into ``out``.

    Raises:
        DataError: no runs under ``path``, or malformed run files.
        ConfigError: several tasks without ``allow_mixed_tasks``, or an unknown ``metric``.
    """
    source, out = Path(path), Path(out)
    runs = collect_runs(source)
    tasks = check_tasks(runs, allow_mixed_tasks)
    settings, metrics = runs.attrs["settings"], runs.attrs["metrics"]
    primary = resolve_metric(metrics, metric)
    summary = summarize(runs)
    shown = display_metrics(summary, metrics, primary)
    table = display_table(summary, shown, settings)
    out.mkdir(parents=True, exist_ok=True)
    markdown = render_markdown(runs, table, source, tasks)
    files = [out / n for n in ("report.md", "report.tex", "runs.csv", "summary.csv", "report.json")]
    files[0].write_text(markdown)
    caption = f"task {', '.join(tasks)}; mean $\\pm$ sample std over seeds"
    files[1].write_text(to_latex(table, caption=caption))
    runs.to_csv(files[2], index=False)
    summary.to_csv(files[3], index=False)
    plots = write_plots(summary, primary, out)
    _remove_stale_plots(out, plots)
    meta = {"source": str(source), "metric": primary, "settings": settings, "metrics": metrics,
            "shown_metrics": shown, "tasks": tasks, "plots": [p.name for p in plots]}
    files[4].write_text(json.dumps(meta, indent=2) + "\n")
    files += plots
    if use_wandb:
        log_to_wandb(table, summary, plots, out, meta)
    return Report(runs=runs, summary=summary, markdown=markdown, metric=primary, files=files)


def build_parser() -> argparse.ArgumentParser:
    """The command-line options of ``python -m rise_exp.report``."""
    p = argparse.ArgumentParser(prog="python -m rise_exp.report", description=__doc__.splitlines()[0])
    p.add_argument("path", help="a Hydra multirun dir, a single run dir, or a tree of run dirs")
    p.add_argument("--out", default=DEFAULT_OUT, help=f"output directory (default: {DEFAULT_OUT})")
    p.add_argument("--metric", default=None,
                   help=f"headline metric: the first table column and the plots' y axis (default: "
                        f"{DEFAULT_METRIC} if present, else the first of {', '.join(MAIN_KEYS)})".replace("%", "%%"))
    p.add_argument("--allow-mixed-tasks", action="store_true", help="report runs of several tasks together")
    p.add_argument("--no-wandb", action="store_true", help="do not log the report to an offline W&B run")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry: write the report and print the Markdown to stdout; user errors print one line (exit 2)."""
    args = build_parser().parse_args(argv)
    try:
        rep = write_report(args.path, args.out, metric=args.metric, allow_mixed_tasks=args.allow_mixed_tasks,
                           use_wandb=not args.no_wandb)
    except RiseError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(rep.markdown)
    print(f"wrote {', '.join(p.name for p in rep.files)} to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
