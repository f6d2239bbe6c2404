"""``diagnostic=sketch_fidelity``: how much does sketching lose?

Per query, the Spearman correlation and the top-N overlap of RISE's scores at each sketch width against
two references computed on the same tokens: unsketched RISE (same tau, support, normalisation and
chunking; what the sketch estimates) and the exact LM-head TracIn kernel ``sum_{t,s} (r_t.r'_s)(h_t.h'_s)``
(tau = 1, full support, raw and cosine-normalised). Each width runs with every sketch seed; cells are
mean ± sample std over seeds of the per-query mean. auPRC@K of every variant stands beside, and
ensembles of E independent sketches (``method.ensemble``: scores are the mean of the members') are
compared with one sketch of the same bytes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from rise_exp.config.diagnostics import parse_width
from rise_exp.core import progress
from rise_exp.diagnostics.context import DiagnosticInputs
from rise_exp.diagnostics.kernels import exact_scores, sketch_scores, unsketched_scores
from rise_exp.diagnostics.plotting import band_line, bytes_axis, new_figure, palette
from rise_exp.diagnostics.ranking import spearman_rows, top_overlap_rows
from rise_exp.diagnostics.result import DiagnosticResult, Section, cell, mean_std
from rise_exp.methods.rise.config import RiseConfig
from rise_exp.methods.rise.sketch import SEED_STRIDE
from rise_exp.retrieval.metrics import retrieval_metrics

REFERENCES = {"unsk": "unsketched RISE", "raw": "exact kernel (raw)", "cos": "exact kernel (cosine)"}
DTYPE_BYTES = {"float16": 2, "bfloat16": 2, "float32": 4}


def compare(scores: np.ndarray, refs: dict[str, np.ndarray], labels: np.ndarray, top_n: int, ks: Any) -> dict:
    """Per-query means of Spearman and top-N overlap against each reference, and auPRC@K / P@N."""
    out: dict[str, float] = {}
    for key, ref in refs.items():
        out[f"spearman_{key}"] = float(np.nanmean(spearman_rows(scores, ref)))
        out[f"top{top_n}_{key}"] = float(top_overlap_rows(scores, ref, top_n).mean())
    m = retrieval_metrics(scores, labels, ks=tuple(ks))
    out.update({f"auprc@{k}": m[f"auprc@{k}"] for k in ks})
    return out


def run(inp: DiagnosticInputs) -> DiagnosticResult:
    """Compute the references once, then every width x seed and every ensemble x seed."""
    s = inp.settings
    base: RiseConfig = inp.rise.signature_config()
    args = (inp.model, inp.pad_id, inp.query_rows, inp.pool_rows)
    per_byte = DTYPE_BYTES[inp.rise.dtype]
    rows: list[dict[str, Any]] = []
    variants = [("single", parse_width(w), 1) for w in s.widths]
    for e in s.ensembles:
        variants.append(("ensemble", (base.kr, base.kh, base.kg), e))
        variants.append(("same bytes", (e * base.kr, base.kh, e * base.kg), 1))
    variants = list(dict.fromkeys(variants))
    # every score matrix passes over the pool once: two references, then each variant with each seed
    with progress.task(len(inp.pool_rows) * (2 + len(variants) * len(s.seeds)), "sketch_fidelity", unit="row"):
        raw, cos = exact_scores(*args, base)
        refs = {"unsk": unsketched_scores(*args, base), "raw": raw, "cos": cos}
        for kind, (kr, kh, kg), members in variants:
            name = f"{kr}/{kh}/{kg}" if members == 1 else f"{members} x {kr}/{kh}/{kg}"
            for seed in s.seeds:
                cfg = base.replace(kr=kr, kh=kh, kg=kg, seed=seed, ensemble=members)
                rec = {"variant": name, "kind": kind, "kr": kr, "kh": kh, "kg": kg, "members": members, "seed": seed}
                rec["bytes_per_row"] = per_byte * cfg.signature_dim
                rows.append({**rec, **compare(sketch_scores(*args, cfg), refs, inp.labels, s.top_n, s.ks)})
    per_seed = pd.DataFrame(rows)
    cols = _metric_columns(s.top_n, s.ks)
    ref_rows = [{"reference": REFERENCES[k], **compare(v, refs, inp.labels, s.top_n, s.ks)} for k, v in refs.items()]
    return _result(inp, per_seed, pd.DataFrame(ref_rows)[["reference", *cols]])


def _metric_columns(top_n: int, ks: Any) -> list[str]:
    return [
        *(f"spearman_{k}" for k in REFERENCES),
        *(f"top{top_n}_{k}" for k in REFERENCES),
        *(f"auprc@{k}" for k in ks),
    ]


def _label(col: str, top_n: int) -> str:
    for key, ref in REFERENCES.items():
        if col.endswith(f"_{key}"):
            what = "Spearman" if col.startswith("spearman") else f"top-{top_n} overlap"
            return f"{what} vs {ref}"
    return col


def _result(inp: DiagnosticInputs, per_seed: pd.DataFrame, refs: pd.DataFrame) -> DiagnosticResult:
    s = inp.settings
    cols = _metric_columns(s.top_n, s.ks)
    summary, display, metrics = [], [], {}
    for (name, kind), grp in per_seed.groupby(["variant", "kind"], sort=False):
        first = grp.iloc[0]
        row = {"variant": name, "kind": kind, "bytes_per_row": int(first["bytes_per_row"]), "seeds": len(grp)}
        shown = {**row}
        for c in cols:
            m, sd = mean_std(grp[c].tolist())
            row[f"{c}_mean"], row[f"{c}_std"] = m, sd
            shown[_label(c, s.top_n)] = cell(grp[c].tolist())
            metrics[f"{c}/{name}"], metrics[f"{c}_std/{name}"] = m, sd
        summary.append(row)
        display.append(shown)
    seeds = ", ".join(map(str, s.seeds))
    ref_display = refs.rename(columns={c: _label(c, s.top_n) for c in refs.columns})
    notes = [
        f"Task {inp.task.name}, model {inp.run.model.name}: {len(inp.task.queries)} queries x {len(inp.task.train)} "
        f"rows. Cells: mean ± sample std over sketch seeds {seeds} of the per-query mean. Ensembles average the "
        f"scores of E sketches (member e uses seed + {SEED_STRIDE} e); 'same bytes' is one sketch as large.",
        f"Unsketched RISE: tau = {inp.rise.tau}, rho = {inp.rise.rho}, top-K {inp.rise.topk}, fusion "
        f"{inp.rise.fusion}, no CountSketch. Exact kernel: sum_(t,s) (r_t . r'_s)(h_t . h'_s) with tau = 1 and "
        "the full softmax, over every scored token of whole rows (= <dL_q/dW, dL_x/dW>).",
    ]
    ref_cells = ref_display.map(lambda v: f"{v:.3f}" if isinstance(v, float) else str(v))
    summary_frame = pd.DataFrame(summary)
    sections = [
        Section("sketch_fidelity", "Sketched RISE against its references", summary_frame, pd.DataFrame(display), notes),
        Section("sketch_fidelity_references", "The references against each other", refs, ref_cells),
        Section("sketch_fidelity_seeds", "Every seed", per_seed, in_markdown=False),
    ]
    title = "Sketch fidelity: RISE at each sketch width against unsketched RISE and the exact LM-head kernel"
    return inp.result(title, sections, metrics, _plot(summary_frame, refs, s))


def _plot(summary: pd.DataFrame, refs: pd.DataFrame, s: Any) -> Any:
    fig, axes = new_figure(3, (16.5, 4.8))
    colors = dict(zip(REFERENCES, palette(3)))
    single = summary[summary["kind"] == "single"].sort_values("bytes_per_row")
    extra = summary[summary["kind"] != "single"]
    k10 = 10 if 10 in s.ks else s.ks[0]
    panels = [("spearman", "Spearman correlation (per query)"), (f"top{s.top_n}", f"top-{s.top_n} overlap")]
    for ax, (stem, ylabel) in zip(axes, panels):
        for key, ref in REFERENCES.items():
            c = f"{stem}_{key}"
            band_line(
                ax,
                single["bytes_per_row"],
                single[f"{c}_mean"],
                single[f"{c}_std"],
                label=f"vs {ref}",
                color=colors[key],
            )
            for marker, kind in (("*", "ensemble"), ("D", "same bytes")):
                pts = extra[extra["kind"] == kind]
                ax.errorbar(
                    pts["bytes_per_row"],
                    pts[f"{c}_mean"],
                    yerr=pts[f"{c}_std"],
                    fmt=marker,
                    color=colors[key],
                    markersize=11 if marker == "*" else 6,
                    capsize=3,
                    linestyle="none",
                )
        ax.set_ylabel(ylabel)
    ax = axes[2]
    band_line(
        ax,
        single["bytes_per_row"],
        single[f"auprc@{k10}_mean"],
        single[f"auprc@{k10}_std"],
        label="sketched RISE",
        color="black",
    )
    for kind, marker in (("ensemble", "*"), ("same bytes", "D")):
        pts = extra[extra["kind"] == kind]
        ax.errorbar(
            pts["bytes_per_row"],
            pts[f"auprc@{k10}_mean"],
            yerr=pts[f"auprc@{k10}_std"],
            fmt=marker,
            color="black",
            capsize=3,
            linestyle="none",
            markersize=11 if marker == "*" else 6,
            label=f"{kind} ({', '.join(pts['variant'])})" if len(pts) else None,
        )
    for key, ref in REFERENCES.items():
        value = float(refs.loc[refs["reference"] == ref, f"auprc@{k10}"].iloc[0])
        ax.axhline(value, color=colors[key], linestyle="--", linewidth=1.2, label=f"{ref}: {value:.3f}")
    ax.set_ylabel(f"auPRC@{k10}")
    for ax in axes:
        bytes_axis(ax)
        ax.grid(True, alpha=0.3)
    axes[0].legend(
        fontsize=8,
        title="line: single sketch; *: ensemble;\n◆: one sketch of the same bytes",
        title_fontsize=8,
        loc="lower right",
    )
    axes[2].legend(fontsize=8, loc="lower right")
    fig.suptitle(
        f"Sketched RISE vs its references; bands and error bars: ± sample std over {len(s.seeds)} sketch "
        f"seeds ({', '.join(map(str, s.seeds))})",
        fontsize=11,
    )
    return fig
