"""``diagnostic=layer_energy``: where does the gradient live (RISE paper, Figures 2 and 4)?

For each example, the exact gradient of its summed token loss (autograd, every parameter) is split into
parameter groups (embeddings, each block, the final norm, the LM head); a group's energy share is its
squared norm over the total, so an example's shares sum to 1. The table gives the mean ± sample std over
examples of each share, for training rows and for queries, at the starting and at the finetuned model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rise_exp.core import progress
from rise_exp.diagnostics.context import DiagnosticInputs, subset
from rise_exp.diagnostics.gradients import example_gradients, group_sizes, parameter_groups, untied_head
from rise_exp.diagnostics.plotting import new_figure, palette
from rise_exp.diagnostics.result import DiagnosticResult, Section, cell, mean_std
from rise_exp.models.weights import load_base_model
from rise_exp.run.pipeline import tokenizer_texts


def squared_norms(model: Any, rows: list, pad_id: int) -> tuple[list[str], np.ndarray]:
    """Group names and ``[n_rows, n_groups]`` squared gradient norms of each row's summed token loss.

    A tied embedding matrix counts as two groups, its input-embedding and its LM-head part
    (:func:`~rise_exp.diagnostics.gradients.untied_head`): the head's is what RISE sketches.
    """
    with untied_head(model):
        groups = parameter_groups(model)
        grads = example_gradients(model, rows, pad_id, groups)
        return list(groups), np.array([[float(g[k].square().sum()) for k in groups] for g in grads])


def shares(sq: np.ndarray) -> np.ndarray:
    """Each row divided by its sum (a row of zeros stays zero): every example's shares sum to 1."""
    total = sq.sum(axis=1, keepdims=True)
    return np.divide(sq, total, out=np.zeros_like(sq), where=total > 0)


def starting_model(inp: DiagnosticInputs) -> Any:
    """The run's model before finetuning (the same weights the finetune started from)."""
    model, _, _ = load_base_model(inp.run.model, tokenizer_texts(inp.task), Path(inp.run.paths.cache_dir))
    return model.eval()


def run(inp: DiagnosticInputs) -> DiagnosticResult:
    s = inp.settings
    rows = [inp.pool_rows[i] for i in subset(len(inp.pool_rows), s.n_rows, s.subset_seed)]
    queries = [inp.query_rows[i] for i in subset(len(inp.query_rows), s.n_queries, s.subset_seed + 1)]
    models = {"start": starting_model(inp), "finetuned": inp.model}
    by_set: dict[tuple[str, str], np.ndarray] = {}
    names: list[str] = []
    with progress.task(len(models) * (len(rows) + len(queries)), "layer_energy", unit="row"):
        for m_key, model in models.items():
            for r_key, rr in (("rows", rows), ("queries", queries)):
                names, sq = squared_norms(model, rr, inp.pad_id)
                by_set[(r_key, m_key)] = shares(sq)
    with untied_head(inp.model) as tied:
        sizes = group_sizes(inp.model, parameter_groups(inp.model))
    total = sum(sizes.values())
    data, shown, metrics = [], [], {}
    for j, name in enumerate(names):
        row = {"group": name, "parameters": sizes[name], "parameter_share": sizes[name] / total}
        disp = {"group": name, "share of parameters": f"{sizes[name] / total:.3f}"}
        for (r_key, m_key), sh in by_set.items():
            m, sd = mean_std(sh[:, j].tolist())
            row[f"{r_key}_{m_key}_mean"], row[f"{r_key}_{m_key}_std"] = m, sd
            disp[f"{r_key}, {m_key}"] = cell(sh[:, j].tolist())
            metrics[f"energy/{r_key}_{m_key}/{name}"] = m
        data.append(row)
        shown.append(disp)
    notes = [
        f"Task {inp.task.name}, model {inp.run.model.name}: {len(rows)} training rows (seed {s.subset_seed}) and "
        f"{len(queries)} queries. Cells: mean ± sample std over examples of the group's share of the squared "
        "gradient norm of the example's summed token loss (each example's shares sum to 1). 'start' is the model "
        "before finetuning (for an embedded model: its random initialisation).",
        *(
            [
                "The model ties its LM head to the input embeddings: the tied matrix's gradient is split into its "
                "input-embedding part and its LM-head part (sum_t r_t h_t^T, what RISE sketches), each a group with "
                "the matrix's parameter count, so the parameter shares count the matrix twice."
            ]
            if tied
            else []
        ),
    ]
    frame = pd.DataFrame(data)
    section = Section("layer_energy", "Share of squared gradient norm", frame, pd.DataFrame(shown), notes)
    title = "Gradient energy per parameter group, starting vs finetuned model"
    return inp.result(title, [section], metrics, _plot(frame, names))


MANY_GROUPS = 10  # above this, blocks are labelled by number and the y axis follows the data


def _plot(frame: pd.DataFrame, names: list[str]) -> Any:
    many = len(names) > MANY_GROUPS
    fig, axes = new_figure(2, (16.0 if many else 13.5, 4.8))
    colors = palette(2)
    x = np.arange(len(names))
    tops = [frame[f"{r}_{m}_mean"] + frame[f"{r}_{m}_std"] for r in ("rows", "queries") for m in ("start", "finetuned")]
    top = min(1.05, 1.15 * max(float(np.nanmax([*tops, frame["parameter_share"]])), 0.05)) if many else 1.05
    labels = [n.removeprefix("block ") for n in names] if many else names
    for ax, r_key in zip(axes, ("rows", "queries")):
        for j, m_key in enumerate(("start", "finetuned")):
            ax.bar(
                x + (j - 0.5) * 0.38,
                frame[f"{r_key}_{m_key}_mean"],
                0.38,
                yerr=frame[f"{r_key}_{m_key}_std"],
                color=colors[j],
                capsize=3,
                label=f"{m_key} model",
            )
        ax.plot(x, frame["parameter_share"], "k_", markersize=18, label="share of parameters")
        ax.set_xticks(
            x, labels, rotation=90 if many else 25, ha="center" if many else "right", fontsize=8 if many else 10
        )
        if many:
            ax.set_xlabel("block (0 = next to the embeddings)")
        ax.set_ylim(0, top)
        ax.set_ylabel("share of squared gradient norm")
        ax.set_title(f"training {r_key}" if r_key == "rows" else "queries", fontsize=10)
        ax.grid(True, axis="y", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(
        "Gradient energy per parameter group; bars: mean over examples, error bars: ± sample std over examples",
        fontsize=11,
    )
    return fig
