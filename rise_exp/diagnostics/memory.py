"""``diagnostic=memory``: what does each method cost, here and on models too large to load here?

Measured: for every method and pool size, a fresh process (``memory_worker``) prepares the run (cached
finetune), builds the method on the first rows of the pool and scores the queries; it reports build time,
index bytes per row, query time and its resident memory (sampled; the rise over the resident memory after
preparation is what the method added). Extrapolated: peak GPU memory of every method for every Pythia and
OLMo size in ``conf/model/``, from the formulas of :mod:`~rise_exp.methods.memory_model`, against
``stage.memory.gpu_gb``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from typing import Any

import pandas as pd

from rise_exp.core.errors import RiseError
from rise_exp.diagnostics.context import DiagnosticInputs
from rise_exp.diagnostics.plotting import new_figure, palette
from rise_exp.diagnostics.result import DiagnosticResult, Section
from rise_exp.methods import memory_model
from rise_exp.methods.memory_model import GPU_METHODS, bytes_per_row, estimate
from rise_exp.models.catalogue import parameter_count
from rise_exp.run.config import RunConfig, compose


def method_config(run: RunConfig, method: str) -> dict[str, Any]:
    """The run's resolved config with ``method``'s default settings (the run's own when it is that method)."""
    from omegaconf import OmegaConf

    node = run.raw["method"] if run.method.name == method else None
    if node is None:
        node = OmegaConf.to_container(compose([f"method={method}"])["method"], resolve=True)
    return {**run.raw, "method": node, "stage": {"name": "attribute"}, "logger": {"kind": "none"}}


def measure_in_subprocess(inp: DiagnosticInputs, method: str, pool: int) -> dict[str, Any]:
    """One measurement in a fresh Python process (its memory is its own)."""
    work = inp.run_dir / "memory_work" / f"{method}_{pool}"
    work.mkdir(parents=True, exist_ok=True)
    spec = {"config": method_config(inp.run, method), "pool": pool, "queries": inp.settings.n_queries}
    spec["work_dir"] = str(work)
    (work / "spec.json").write_text(json.dumps(spec))
    cmd = [sys.executable, "-m", "rise_exp.diagnostics.memory_worker", str(work / "spec.json"), str(work / "out.json")]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=inp.settings.timeout_s)
    except subprocess.TimeoutExpired:
        raise RiseError(f"memory: {method} on {pool} rows took over stage.memory.timeout_s") from None
    if res.returncode != 0:
        raise RuntimeError(f"memory worker for {method} on {pool} rows failed:\n{res.stderr[-3000:]}")
    out = json.loads((work / "out.json").read_text())
    shutil.rmtree(work, ignore_errors=True)  # indexes of the measurement
    return {"method": method, **out}


def run(inp: DiagnosticInputs) -> DiagnosticResult:
    s = inp.settings
    measured = pd.DataFrame([measure_in_subprocess(inp, m, n) for m in s.methods for n in s.pool_sizes])
    shutil.rmtree(inp.run_dir / "memory_work", ignore_errors=True)
    est = extrapolate(inp)
    metrics = {
        f"{c}/{r.method}@{int(r.pool)}": float(getattr(r, c))
        for r in measured.itertuples()
        for c in ("build_s", "bytes_per_row", "rss_over_base_mb")
    }
    metrics.update(
        {
            f"fits/{r['model']}/{m}": float(r[f"{m} GB"] <= s.gpu_gb)
            for r in est.to_dict("records")
            for m in GPU_METHODS
            if f"{m} GB" in r
        }
    )
    shown = est.copy()
    for m in GPU_METHODS:
        if f"{m} GB" in shown:
            shown[f"{m} GB"] = [f"{g:.3g} {'yes' if g <= s.gpu_gb else 'NO'}" for g in est[f"{m} GB"]]
    shown["parameters"] = [f"{p / 1e9:.3g} B" for p in est["parameters"]]
    notes_measured = [
        f"Task {inp.task.name}, model {inp.run.model.name}, {s.n_queries} queries; each cell a fresh process on "
        "this machine. rss_over_base_mb: peak resident memory during build and scoring minus the resident "
        "memory after preparation (model loaded), sampled every 10 ms.",
    ]
    notes_est = [
        f"Peak GPU memory in GB (1e9 bytes) and whether it fits in {s.gpu_gb:g} GB, for rows of {s.seq_len} tokens "
        "and each method's default settings; weights in the model's dtype. Formulas (memory_model.py):",
        "",
        *(f"    {line}" for line in (memory_model.__doc__ or "").strip().splitlines()),
    ]
    sections = [
        Section("memory", "Measured on this machine", measured, None, notes_measured),
        Section("memory_extrapolated", "Extrapolated peak GPU memory", est, shown, notes_est),
    ]
    title = "Cost per method: measured against pool size, and extrapolated to every Pythia and OLMo size"
    return inp.result(title, sections, metrics, _plot_measured(measured), _plot_est(est, s.gpu_gb))


def extrapolate(inp: DiagnosticInputs) -> pd.DataFrame:
    """One row per ``stage.memory.extrapolate`` model: parameters, weights and every method's peak in GB."""
    rows = []
    for name in inp.settings.extrapolate:
        m = RunConfig.from_cfg(compose([f"model={name}"])).model
        e = estimate(m, inp.settings.seq_len)
        per_row = bytes_per_row(m)
        rows.append(
            {
                "model": name,
                "dtype": m.dtype,
                "parameters": parameter_count(m),
                "weights GB": e.weight_bytes / 1e9,
                **{f"{k} GB": v / 1e9 for k, v in e.peaks.items()},
                **{f"{k} bytes/row": v for k, v in per_row.items()},
            }
        )
    return pd.DataFrame(rows)


def _plot_measured(data: pd.DataFrame) -> Any:
    from matplotlib.ticker import NullLocator

    fig, axes = new_figure(3, (15.5, 4.6))
    colors = dict(zip(data["method"].unique(), palette(data["method"].nunique())))
    panels = [
        ("build_s", "build time (s)"),
        ("rss_over_base_mb", "peak RSS over the loaded model (MiB)"),
        ("query_s", "time to score the queries (s)"),
    ]
    sizes = sorted(data["pool"].unique())
    for ax, (col, label) in zip(axes, panels):
        for method, grp in data.groupby("method", sort=False):
            ax.plot(grp["pool"], grp[col].clip(lower=1e-3), "o-", color=colors[method], label=method)
        ax.set_xscale("log")
        ax.set_xticks(sizes, [str(n) for n in sizes])
        ax.xaxis.set_minor_locator(NullLocator())
        values = data[col].clip(lower=1e-3)
        wide = values.max() >= 10 * values.min()  # a log axis within one decade may show no tick labels
        if wide:
            ax.set_yscale("log")
        ax.set_xlabel("pool size (rows, log scale)")
        ax.set_ylabel(label + (" (log scale)" if wide else ""))
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(
        "Measured cost per method against pool size: one fresh process per point, one run each "
        "(times include the load of other jobs on this machine)",
        fontsize=11,
    )
    return fig


def _plot_est(est: pd.DataFrame, gpu_gb: float) -> Any:
    fig, (ax,) = new_figure(1, (9.0, 5.4))
    methods = ["weights", *(m for m in GPU_METHODS if f"{m} GB" in est)]
    families = {"pythia": ("o", "-"), "olmo": ("s", "--")}
    for c, m in zip(palette(len(methods)), methods):
        col = "weights GB" if m == "weights" else f"{m} GB"
        for fam, (marker, style) in families.items():
            part = est[est["model"].str.startswith(fam)].sort_values("parameters")
            if len(part):
                ax.plot(
                    part["parameters"],
                    part[col],
                    marker=marker,
                    linestyle=":" if m == "weights" else style,
                    color=c,
                    label=("weights only" if m == "weights" else m) if fam == "pythia" else None,
                )
    ax.axhline(gpu_gb, color="red", linestyle="-.", label=f"{gpu_gb:g} GB GPU")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("model parameters (log scale)")
    ax.set_ylabel("estimated peak GPU memory (GB, log scale)")
    ax.grid(True, alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="upper left")
    ax.set_title(
        "Extrapolated from conf/model/ (formulas in memory.md; no seeds). Circles, solid: Pythia 14M-6.9B;\n"
        "squares, dashed: OLMo 2 1B-32B. Weights in each model's dtype (Pythia <= 160M float32)",
        fontsize=9,
    )
    return fig
