"""``diagnostic=head_vs_full``: does the output layer carry the influence?

On a subset of training rows and queries, the exact per-example gradient of every parameter (autograd;
the loss is the summed NLL of the tokens RISE scores) gives full-model TracIn at the finetuned model,
``<g_q, g_x>`` (raw) and its cosine. Its LM-head block is the head-only kernel (what RISE sketches, at
tau = 1 and full support); the rest of the model ("trunk") is the remainder. Each is compared with full
TracIn (Spearman, top-N overlap) and with the labels (positives among the top N, auPRC@10), beside RISE
(the run's settings, over sketch seeds).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch

from rise_exp.core import progress
from rise_exp.diagnostics.context import DiagnosticInputs, subset
from rise_exp.diagnostics.gradients import (
    EMBEDDINGS,
    HEAD,
    example_gradients,
    is_tied,
    parameter_groups,
    untied_head,
)
from rise_exp.diagnostics.kernels import sketch_scores
from rise_exp.diagnostics.plotting import new_figure, palette
from rise_exp.diagnostics.ranking import positives_in_top, spearman_rows, top_overlap_rows
from rise_exp.diagnostics.result import DiagnosticResult, Section, cell
from rise_exp.retrieval.metrics import retrieval_metrics


def gradient_kernels(inp: DiagnosticInputs, queries: list, pool: list) -> dict[str, np.ndarray]:
    """Raw ``[Q, N]`` kernels of the full gradient, its LM-head block and the rest, and the full cosine.

    With tied embeddings the LM-head block is the output projection's part of the tied matrix's gradient
    (``sum_t r_t h_t^T``, :func:`~rise_exp.diagnostics.gradients.untied_head`), the rest includes the input
    embedding's part, and the full kernel is the tied model's (its matrix's gradient is the two parts' sum,
    so full = head + rest + the cross terms). Holds the queries' gradients and one row's: ``(Q + 1) x 4 P``
    bytes for ``P`` parameters (``P`` counting a tied matrix twice).
    """
    with untied_head(inp.model) as tied:
        groups = parameter_groups(inp.model)
        emb = [EMBEDDINGS] if tied else []
        others = [k for k in groups if k != HEAD and k not in emb]

        def parts(g: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            e = g[EMBEDDINGS] if tied else g[HEAD][:0]  # untied: an empty part, whose products are 0
            return g[HEAD], e, torch.cat([g[k] for k in others])

        qh, qe, qo = (
            torch.stack(t) for t in zip(*map(parts, example_gradients(inp.model, queries, inp.pad_id, groups)))
        )
        head = np.empty((len(queries), len(pool)))
        rest, full = np.empty_like(head), np.empty_like(head)
        x_norm = np.empty(len(pool))
        for i, g in enumerate(example_gradients(inp.model, pool, inp.pad_id, groups)):
            xh, xe, xo = parts(g)
            hh, ee, oo = qh @ xh, qe @ xe, qo @ xo
            cross = qe @ xh + qh @ xe if tied else 0.0
            head[:, i], rest[:, i], full[:, i] = hh.numpy(), (oo + ee).numpy(), (oo + ee + hh + cross).numpy()
            x_norm[i] = float((xo.square().sum() + (xe + xh if tied else xh).square().sum()).sqrt())
    q_norm = (qo.square().sum(1) + (qe + qh if tied else qh).square().sum(1)).sqrt().numpy()
    return {"full": full, "full_cos": full / np.outer(q_norm, x_norm), "head": head, "trunk": rest}


NAMES = {
    "full": "full-model TracIn (raw)",
    "full_cos": "full-model TracIn (cosine)",
    "head": "LM-head kernel (raw)",
    "trunk": "every parameter but the LM head (raw)",
    "rise": "RISE (sketched)",
}


def run(inp: DiagnosticInputs) -> DiagnosticResult:
    s = inp.settings
    rows_idx = subset(len(inp.pool_rows), s.n_rows, s.subset_seed)
    q_idx = subset(len(inp.query_rows), s.n_queries, s.subset_seed + 1)
    pool = [inp.pool_rows[i] for i in rows_idx]
    queries = [inp.query_rows[i] for i in q_idx]
    labels = inp.labels[..., rows_idx] if inp.labels.ndim == 1 else inp.labels[np.ix_(q_idx, rows_idx)]
    base = inp.rise.signature_config()
    with progress.task(len(queries) + len(pool) * (1 + len(s.seeds)), "head_vs_full", unit="row"):
        kernels = gradient_kernels(inp, queries, pool)
        rise = [sketch_scores(inp.model, inp.pad_id, queries, pool, base.replace(seed=seed)) for seed in s.seeds]
    out, shown, metrics = [], [], {}
    for key, name in NAMES.items():
        runs = rise if key == "rise" else [kernels[key]]
        stats: dict[str, list[float]] = {}
        for sc in runs:
            vals = {
                "spearman_full": float(np.nanmean(spearman_rows(sc, kernels["full"]))),
                "spearman_full_cos": float(np.nanmean(spearman_rows(sc, kernels["full_cos"]))),
                f"top{s.top_n}_full": float(top_overlap_rows(sc, kernels["full"], s.top_n).mean()),
                f"top{s.top_n}_full_cos": float(top_overlap_rows(sc, kernels["full_cos"], s.top_n).mean()),
                f"positives_top{s.top_n}": float(positives_in_top(sc, labels, s.top_n).mean()),
                "auprc@10": retrieval_metrics(sc, labels, ks=(10,))["auprc@10"],
            }
            for k, v in vals.items():
                stats.setdefault(k, []).append(v)
        row = {"scores": name, "runs": len(runs)}
        out.append(
            {
                **row,
                **{f"{k}_mean": np.mean(v) for k, v in stats.items()},
                **{f"{k}_std": (np.std(v, ddof=1) if len(v) > 1 else 0.0) for k, v in stats.items()},
            }
        )
        shown.append({**row, **{_label(k, s.top_n): cell(v) for k, v in stats.items()}})
        metrics.update({f"{k}/{key}": float(np.mean(v)) for k, v in stats.items()})
    n_pos = float(np.broadcast_to(labels, kernels["full"].shape).sum(1).mean())
    notes = [
        f"Task {inp.task.name}, model {inp.run.model.name}: {len(queries)} queries x {len(pool)} rows drawn with "
        f"seed {s.subset_seed} ({n_pos:.1f} positive rows per query on average). Gradients: autograd of the summed "
        "NLL of the scored tokens, every parameter, the finetuned model (one checkpoint, no learning-rate weights).",
        f"RISE: the run's settings, cells mean ± sample std over sketch seeds {', '.join(map(str, s.seeds))}; "
        "kernels are deterministic (one run).",
        *(
            [
                "The model ties its LM head to the input embeddings: 'LM-head kernel' is the output projection's part "
                "of the tied matrix's gradient (sum_t r_t h_t^T, what RISE sketches); 'every parameter but the LM "
                "head' holds the input-embedding part; full TracIn is the tied model's "
                "(full = head + rest + cross terms)."
            ]
            if is_tied(inp.model)
            else []
        ),
    ]
    data = pd.DataFrame(out)
    section = Section("head_vs_full", "Agreement with full-model TracIn", data, pd.DataFrame(shown), notes)
    figure = _plot(data, s.top_n, len(s.seeds), _best(labels, len(queries), s.top_n))
    title = "Head vs full model: full-gradient TracIn against the LM-head kernel and RISE"
    return inp.result(title, [section], metrics, figure)


def _best(labels: np.ndarray, n_queries: int, top_n: int) -> float:
    """Mean over queries of the most positives a top-N can hold: min(N, positives of the query)."""
    per_query = np.broadcast_to(labels, (n_queries, labels.shape[-1])).sum(axis=1)
    return float(np.minimum(per_query, top_n).mean())


def _label(key: str, top_n: int) -> str:
    return {
        "spearman_full": "Spearman vs full (raw)",
        "spearman_full_cos": "Spearman vs full (cosine)",
        f"top{top_n}_full": f"top-{top_n} overlap vs full (raw)",
        f"top{top_n}_full_cos": f"top-{top_n} overlap vs full (cosine)",
        f"positives_top{top_n}": f"positives in top {top_n}",
        "auprc@10": "auPRC@10",
    }[key]


def _plot(data: pd.DataFrame, top_n: int, n_seeds: int, best: float) -> Any:
    from matplotlib.patches import Patch

    fig, axes = new_figure(3, (15.5, 4.8))
    colors = palette(len(data))
    panels = [
        (["spearman_full", "spearman_full_cos"], "Spearman vs full TracIn"),
        ([f"top{top_n}_full", f"top{top_n}_full_cos"], f"top-{top_n} overlap vs full TracIn"),
        ([f"positives_top{top_n}"], f"positives among the top {top_n}"),
    ]
    x = np.arange(len(data))
    for ax, (cols, title) in zip(axes, panels):
        width = 0.8 / len(cols)
        for j, c in enumerate(cols):
            ax.bar(
                x + (j - (len(cols) - 1) / 2) * width,
                data[f"{c}_mean"],
                width,
                yerr=data[f"{c}_std"],
                color=colors,
                capsize=3,
                edgecolor="black",
                hatch="//" if j else None,
            )
        ax.set_xticks(x, data["scores"], rotation=25, ha="right", fontsize=8)
        ax.set_title(title, fontsize=10)
        ax.grid(True, axis="y", alpha=0.3)
        if len(cols) > 1:
            handles = [
                Patch(facecolor="white", edgecolor="black", label="against full TracIn (raw)"),
                Patch(facecolor="white", edgecolor="black", hatch="//", label="against full TracIn (cosine)"),
            ]
            ax.legend(handles=handles, fontsize=8, loc="lower left")
    axes[2].axhline(best, color="grey", linestyle="--", label=f"most possible ({best:.1f})")
    axes[2].legend(fontsize=8, loc="lower left")
    axes[0].set_ylabel("mean over queries")
    fig.suptitle(
        f"Error bars: ± sample std over {n_seeds} sketch seeds (RISE only; the kernels are exact, one run)", fontsize=11
    )
    return fig
