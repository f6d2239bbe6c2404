"""``diagnostic=hidden_retrieval``: is RISE more than a good layer choice (RISE paper, Figure 7)?

Every row and query is represented, at every layer of the finetuned model (the embeddings' output, each
block's output; the last is the final-norm hidden state RISE reads), by the mean of its hidden states at
the positions that predict a scored token, over RISE's chunks. Retrieval scores are cosines; each layer is
evaluated like a method (auPRC@K, P@N) and compared with RISE (Spearman, top-N overlap), and RISE itself
runs with every sketch seed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch

from rise_exp.core import progress
from rise_exp.data.encoding import EncodedRow, collate
from rise_exp.diagnostics.context import DiagnosticInputs
from rise_exp.diagnostics.kernels import sketch_scores
from rise_exp.diagnostics.plotting import new_figure, palette
from rise_exp.diagnostics.ranking import spearman_rows, top_overlap_rows
from rise_exp.diagnostics.result import DiagnosticResult, Section, cell, mean_std
from rise_exp.methods.rise.chunking import chunk_batches
from rise_exp.methods.rise.config import RiseConfig
from rise_exp.methods.rise.trunk import base_model
from rise_exp.retrieval.metrics import retrieval_metrics


@torch.inference_mode()
def layer_means(model: Any, rows: list[EncodedRow], pad_id: int, cfg: RiseConfig) -> np.ndarray:
    """``[layers + 1, len(rows), D]``: per layer, each row's mean hidden state over its predicting positions."""
    out: np.ndarray | None = None
    counts = np.zeros(len(rows))
    where = {r.row: i for i, r in enumerate(rows)}
    dev = next(model.parameters()).device
    for chunks in chunk_batches(rows, cfg, 4096):
        batch = collate(chunks, pad_id)
        ids, att = batch["input_ids"].to(dev), batch["attention_mask"].to(dev)
        tm = batch["target_mask"].to(dev) & att.bool()
        tm[:, 0] = False
        states = base_model(model)(input_ids=ids, attention_mask=att, output_hidden_states=True).hidden_states
        b_idx, t_idx = tm.nonzero(as_tuple=True)
        stack = torch.stack([h[b_idx, t_idx - 1] for h in states]).double().cpu().numpy()  # [layers+1, T, D]
        if out is None:
            out = np.zeros((stack.shape[0], len(rows), stack.shape[2]))
        owner = np.asarray([where[int(batch["row"][b])] for b in b_idx.cpu().tolist()])
        np.add.at(out, (slice(None), owner), stack)
        np.add.at(counts, owner, 1.0)
        progress.advance(len({c.row for c in chunks}))
    assert out is not None
    return out / counts[None, :, None]


def cosine_scores(q: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Cosine similarity ``[Q, N]`` of row vectors."""
    qn = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-30)
    xn = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-30)
    return qn @ xn.T


def layer_names(n: int) -> list[str]:
    """Names of HF's ``n`` hidden states: the embeddings, the output of blocks 0 .. n-3, and the last block's
    output after the final norm (what ``last_hidden_state`` and RISE read)."""
    return ["embeddings", *(f"block {i}" for i in range(n - 2)), f"block {n - 2} + final norm"]


def run(inp: DiagnosticInputs) -> DiagnosticResult:
    s = inp.settings
    base = inp.rise.signature_config()
    q, n = len(inp.query_rows), len(inp.pool_rows)
    with progress.task(q + n + len(s.seeds) * n, "hidden_retrieval", unit="row"):
        q_layers = layer_means(inp.model, inp.query_rows, inp.pad_id, base)
        x_layers = layer_means(inp.model, inp.pool_rows, inp.pad_id, base)
        rise = [
            sketch_scores(inp.model, inp.pad_id, inp.query_rows, inp.pool_rows, base.replace(seed=sd)) for sd in s.seeds
        ]
    names = layer_names(q_layers.shape[0])
    data, shown, metrics = [], [], {}

    def evaluate(name: str, runs: list[np.ndarray], layer: int | None) -> None:
        stats: dict[str, list[float]] = {}
        for sc in runs:
            m = retrieval_metrics(sc, inp.labels, ks=tuple(sorted({*s.ks, s.top_n})))
            vals = {**{f"auprc@{k}": m[f"auprc@{k}"] for k in s.ks}, f"p@{s.top_n}": m[f"p@{s.top_n}"]}
            if name != "RISE":
                vals["spearman_rise"] = float(np.mean([np.nanmean(spearman_rows(sc, r)) for r in rise]))
                vals[f"top{s.top_n}_rise"] = float(np.mean([top_overlap_rows(sc, r, s.top_n).mean() for r in rise]))
            for k, v in vals.items():
                stats.setdefault(k, []).append(v)
        row: dict[str, Any] = {"scores": name, "layer": layer, "runs": len(runs)}
        disp: dict[str, Any] = {"scores": name, "runs": len(runs)}
        for k, v in stats.items():
            row[f"{k}_mean"], row[f"{k}_std"] = mean_std(v)
            disp[k] = cell(v)
            metrics[f"{k}/{name}"] = row[f"{k}_mean"]
        data.append(row)
        shown.append(disp)

    for i, name in enumerate(names):
        evaluate(name, [cosine_scores(q_layers[i], x_layers[i])], i)
    evaluate("RISE", rise, None)
    frame = pd.DataFrame(data)
    seeds = ", ".join(map(str, s.seeds))
    notes = [
        f"Task {inp.task.name}, model {inp.run.model.name}: {len(inp.task.queries)} queries x {len(inp.task.train)} "
        "rows. Layer rows: cosine of mean hidden states (deterministic, one run); spearman_rise and top-N overlap "
        f"are averaged over the RISE seeds. RISE: the run's settings, mean ± sample std over sketch seeds {seeds}.",
    ]
    section = Section("hidden_retrieval", "Every layer as a retrieval method", frame, pd.DataFrame(shown), notes)
    title = "Retrieval by hidden-state cosine at every layer, against RISE"
    return inp.result(title, [section], metrics, _plot(frame, s, names))


MANY_LAYERS = 10  # above this, blocks are labelled by number and the legend goes below the axes


def _plot(frame: pd.DataFrame, s: Any, names: list[str]) -> Any:
    many = len(names) > MANY_LAYERS
    fig, (ax,) = new_figure(1, (12.0, 5.6) if many else (8.0, 4.8))
    layers = frame[frame["scores"] != "RISE"]
    rise = frame[frame["scores"] == "RISE"].iloc[0]
    x = np.arange(len(layers))
    colors = palette(len(s.ks))
    for c, k in zip(colors, s.ks):
        ax.plot(x, layers[f"auprc@{k}_mean"], "o-", color=c, label=f"hidden-state cosine, auPRC@{k}")
        m, sd = rise[f"auprc@{k}_mean"], rise[f"auprc@{k}_std"]
        ax.axhline(m, color=c, linestyle="--", linewidth=1.2, label=f"RISE auPRC@{k}: {m:.3f}")
        ax.axhspan(m - sd, m + sd, color=c, alpha=0.15)
    if many:
        short = ["emb", *(n.removeprefix("block ").replace(" + final norm", "+norm") for n in names[1:])]
        ax.set_xticks(x, short, rotation=90, fontsize=8)
        ax.set_xlabel(
            "hidden state after this block (emb = embeddings; last: after the final norm), mean over scored positions"
        )
    else:
        ax.set_xticks(x, names, rotation=20, ha="right")
        ax.set_xlabel("representation (hidden state after this layer, mean over the scored positions)")
    ax.set_ylabel("auPRC@K (mean over queries)")
    ax.set_ylim(0, 1.02)
    ax.grid(True, alpha=0.3)
    if many:
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=3)
    else:
        ax.legend(fontsize=8, loc="best")
    ax.set_title(
        f"RISE band: ± sample std over {len(s.seeds)} sketch seeds ({', '.join(map(str, s.seeds))})", fontsize=10
    )
    return fig
