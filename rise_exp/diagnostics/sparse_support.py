"""``diagnostic=sparse_support``: what does the sparse residual support keep (RISE paper, Figure 3)?

For index-row tokens (whole rows drawn with a seed) at the finetuned model, the dense residual
``r = softmax(z / tau) - e_y`` over all V tokens is compared with RISE's sparse one (top-K of ``z / tau``,
ground truth forced in, prefix to cumulative mass ``rho``, renormalised; ``support.select_support``):

- energy kept: ``|r restricted to the support|^2 / |r|^2``;
- cosine of the sparse and the dense residual (the RH factor before sketching);
- cosine of the sparse and the dense projected error ``W^T r`` (the GH factor before sketching).

Means are over tokens (tokens whose dense residual underflows to zero in float64 are left out and
counted); the energy-weighted mean weights each token by ``|r|^2``, its weight in the gradient.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from rise_exp.data.encoding import collate
from rise_exp.diagnostics.context import DiagnosticInputs
from rise_exp.diagnostics.plotting import new_figure, palette
from rise_exp.diagnostics.result import DiagnosticResult, Section
from rise_exp.methods.rise.config import RiseConfig
from rise_exp.methods.rise.head import RiseHead
from rise_exp.methods.rise.support import select_support
from rise_exp.methods.rise.trunk import hidden_states


@torch.inference_mode()
def sample_tokens(inp: DiagnosticInputs, n_tokens: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Hidden states ``[n, D]`` and targets ``[n]`` of the scored tokens of randomly ordered whole rows."""
    rows = inp.pool_rows
    order = np.random.default_rng(seed).permutation(len(rows))
    hs, ys, total = [], [], 0
    dev = next(inp.model.parameters()).device
    limit = getattr(inp.model.config, "max_position_embeddings", None) or 10**9
    for i in order:
        row = rows[i]
        batch = collate([row], inp.pad_id)
        ids, att = batch["input_ids"][:, :limit].to(dev), batch["attention_mask"][:, :limit].to(dev)
        tm = batch["target_mask"][0, :limit].clone()
        tm[0] = False
        t = tm.nonzero()[:, 0].to(dev)
        hs.append(hidden_states(inp.model, ids, att)[0, t - 1])
        ys.append(ids[0, t])
        total += len(t)
        if total >= n_tokens:
            break
    return torch.cat(hs)[:n_tokens], torch.cat(ys)[:n_tokens]


def _ratio(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """``num / den`` where ``den > 0``, else 0 (a support holding only the ground truth keeps nothing)."""
    return torch.where(den > 0, num / torch.where(den > 0, den, torch.ones_like(den)), 0.0)


def _cos(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Row cosines; 0 where either row is zero."""
    return _ratio((a * b).sum(1), a.norm(dim=1) * b.norm(dim=1))


TOKEN_SLICE = 512  # tokens per pass: bounds the dense [tokens, V] residuals
GATHER_SLICE = 64  # tokens per gather of the support's unembedding rows: bounds [tokens, K, D]


@dataclass
class DenseSide:
    """One slice of tokens at one tau: logits, the dense residual, its GH error and energy (no support)."""

    z: torch.Tensor
    y: torch.Tensor
    dense: torch.Tensor  # [n, V] float64
    gh: torch.Tensor  # [n, D] dense @ W
    energy: torch.Tensor  # [n] |r|^2


def dense_side(head: RiseHead, h: torch.Tensor, y: torch.Tensor, cfg: RiseConfig) -> DenseSide:
    """The dense residual of ``cfg``'s tau on the full vocabulary and what follows from it."""
    z = head.logits(h)
    dense = select_support(z, y, cfg.replace(full_support=True)).dense(head.vocab_size)
    return DenseSide(z, y, dense, dense @ head.weight.double(), dense.square().sum(1))


def sparse_stats(head: RiseHead, side: DenseSide, cfg: RiseConfig) -> dict[str, torch.Tensor]:
    """Energy kept, residual cosine and GH cosine of ``cfg``'s support against ``side``, and its sizes.

    Works on the support's entries only (gathers, not ``[n, V]`` products), so each K, rho costs
    ``n K D``, not ``n V D``.
    """
    sup = select_support(side.z, side.y, cfg)
    vals = sup.residual * sup.mask
    at_dense = side.dense.gather(1, sup.index) * sup.mask
    w = head.weight.double()
    gh = torch.cat(
        [
            torch.einsum("nk,nkd->nd", vals[i : i + GATHER_SLICE], w[sup.index[i : i + GATHER_SLICE]])
            for i in range(0, len(vals), GATHER_SLICE)
        ]
    )
    return {
        "energy": side.energy,
        "kept": at_dense.square().sum(1) / side.energy,
        "cos_r": _ratio((vals * at_dense).sum(1), vals.norm(dim=1) * side.energy.sqrt()),
        "cos_gh": _cos(gh, side.gh),
        "size": sup.mask.sum(1).double(),
    }


def all_stats(
    head: RiseHead, h: torch.Tensor, y: torch.Tensor, cfg: RiseConfig, rhos: Any, topks: list[int]
) -> dict[tuple[float, int], dict[str, torch.Tensor]]:
    """:func:`support_stats` of every (rho, K) at ``cfg``'s tau, each dense side computed once."""
    parts: dict[tuple[float, int], list[dict[str, torch.Tensor]]] = {(r, k): [] for r in rhos for k in topks}
    for i in range(0, len(y), TOKEN_SLICE):
        side = dense_side(head, h[i : i + TOKEN_SLICE], y[i : i + TOKEN_SLICE], cfg)
        for rho, k in parts:
            parts[(rho, k)].append(sparse_stats(head, side, cfg.replace(rho=rho, topk=k)))
    return {key: {n: torch.cat([p[n] for p in ps]) for n in ps[0]} for key, ps in parts.items()}


def support_stats(head: RiseHead, h: torch.Tensor, y: torch.Tensor, cfg: RiseConfig) -> dict[str, torch.Tensor]:
    """Per-token energy kept, residual cosine and GH cosine of ``cfg``'s support, and the support sizes."""
    return all_stats(head, h, y, cfg, [cfg.rho], [cfg.topk])[(cfg.rho, cfg.topk)]


def run(inp: DiagnosticInputs) -> DiagnosticResult:
    s = inp.settings
    h, y = sample_tokens(inp, s.n_tokens, s.seed)
    base = inp.rise.signature_config()
    head = RiseHead.from_model(inp.model, base.replace(check_logits=False))
    vocab = head.vocab_size
    rows, metrics = [], {}
    topks = sorted({min(k, vocab) for k in s.topks})
    for tau in s.taus:
        per_tau = all_stats(head, h, y, base.replace(tau=tau), s.rhos, topks)
        for rho in s.rhos:
            for k in topks:
                st = per_tau[(rho, k)]
                ok = st["energy"] > 0
                wts = st["energy"][ok] / st["energy"][ok].sum()
                row = {
                    "tau": tau,
                    "rho": rho,
                    "K": k,
                    "support_size": float(st["size"].mean()),
                    "energy_kept": float(st["kept"][ok].mean()),
                    "energy_kept_weighted": float((st["kept"][ok] * wts).sum()),
                    "cos_r": float(st["cos_r"][ok].mean()),
                    "cos_gh": float(st["cos_gh"][ok].mean()),
                    "cos_gh_weighted": float((st["cos_gh"][ok] * wts).sum()),
                    "cos_gh_p10": float(st["cos_gh"][ok].quantile(0.1)),
                    "tokens": int(ok.sum()),
                    "zero_residual_tokens": int((~ok).sum()),
                }
                rows.append(row)
                for c in ("energy_kept", "cos_gh"):
                    metrics[f"{c}/tau={tau:g},rho={rho:g},K={k}"] = row[c]
    frame = pd.DataFrame(rows)
    notes = [
        f"Task {inp.task.name}, model {inp.run.model.name} (V = {vocab}): {len(y)} scored tokens of index rows "
        f"(whole rows in a random order, seed {s.seed}). Means over tokens with a non-zero dense residual; "
        "'weighted' weights each token by |r|^2. cos_gh_p10: the 10th percentile over tokens. A sparse "
        "residual that is zero (the support holds only the ground truth) has cosine 0. "
        f"min_keep = {base.min_keep}.",
    ]
    section = Section("sparse_support", "Support against K, tau and rho", frame, None, notes)
    title = "Sparse residual support: energy kept and fidelity of the GH error, against K and tau"
    return inp.result(title, [section], metrics, _plot(frame, s, len(y)))


def _plot(frame: pd.DataFrame, s: Any, n_tokens: int) -> Any:
    fig, axes = new_figure(3, (16.0, 4.6))
    colors = dict(zip(s.taus, palette(len(s.taus))))
    styles = dict(zip(s.rhos, ["-", "--", ":", "-."]))
    panels = [
        ("energy_kept_weighted", "residual energy kept (|r|²-weighted mean)"),
        ("cos_r", "cosine sparse vs dense residual r (mean)"),
        ("cos_gh", "cosine sparse vs dense GH error Wᵀr (mean)"),
    ]
    for ax, (col, ylabel) in zip(axes, panels):
        for (tau, rho), grp in frame.groupby(["tau", "rho"], sort=False):
            ax.plot(
                grp["K"],
                grp[col],
                marker="o",
                markersize=4,
                color=colors[tau],
                linestyle=styles[rho],
                label=f"tau={tau:g}, rho={rho:g}",
            )
        ax.set_xscale("log", base=2)
        ax.set_xticks(sorted(frame["K"].unique()), [str(k) for k in sorted(frame["K"].unique())])
        ax.set_xlabel("support cap K (log scale; K = V is the full vocabulary)")
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=7, ncol=2, title="colour: tau; line style: rho", title_fontsize=8)
    fig.suptitle(
        f"Top-K + ground-truth support over {n_tokens} index-row tokens (no seed spread: the support is deterministic)",
        fontsize=11,
    )
    return fig
