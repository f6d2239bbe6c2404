"""Score matrices ``[Q, N]`` of RISE and of its unsketched references, all on the tokens RISE scores.

- Sketched RISE: the method's own code path (:func:`~rise_exp.methods.rise.signatures.compute_signatures`).
- Unsketched RISE (same tau, support, normalisation and chunking, no CountSketch) and the exact LM-head
  TracIn kernel ``sum_{t,s} (r_t . r'_s)(h_t . h'_s)`` (tau = 1, full support, raw factors, whole rows):
  from per-token factors, ``<sum_t a_t (x) b_t, sum_s a'_s (x) b'_s> = sum_{t,s} (a_t . a'_s)(b_t . b'_s)``
  per channel (``rh``: a = r, b = h; ``gh``: g = W^T r, h; ``rg``: r, g). No ``V x D`` matrix is ever
  formed, so the references run on any model whose ``[tokens, V]`` residuals fit in memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from rise_exp.core import progress
from rise_exp.core.errors import DataError
from rise_exp.data.encoding import EncodedRow, collate
from rise_exp.methods.rise.chunking import chunk_row
from rise_exp.methods.rise.config import RiseConfig
from rise_exp.methods.rise.head import RiseHead, l2_normalize
from rise_exp.methods.rise.signatures import compute_signatures
from rise_exp.methods.rise.support import select_support
from rise_exp.methods.rise.trunk import hidden_states

CHANNEL_FACTORS = {"rh": ("r", "h"), "gh": ("g", "h"), "rg": ("r", "g")}
POOL_SLICE = 64  # pool rows per slice: bounds the signatures (or factors) held at once


def exact_config(cfg: RiseConfig) -> RiseConfig:
    """The exact LM-head TracIn kernel as RISE settings: RH only, tau = 1, full support, nothing normalised."""
    return cfg.signature_config().replace(
        fusion="rh",
        sketch="identity",
        tau=1.0,
        full_support=True,
        normalize_tokens=False,
        normalize_signature=False,
        lam_rh=1.0,
    )


def sketch_scores(
    model: Any, pad_id: int, queries: Sequence[EncodedRow], pool: Sequence[EncodedRow], cfg: RiseConfig
) -> np.ndarray:
    """RISE scores ``[Q, N]`` (float64) from the method's own signatures, tables drawn from ``cfg.seed``."""
    head = RiseHead.from_model(model, cfg)
    q = compute_signatures(model, pad_id, queries, cfg, head=head).astype(np.float64)
    out = np.empty((len(queries), len(pool)))
    for s in range(0, len(pool), POOL_SLICE):
        x = compute_signatures(model, pad_id, pool[s : s + POOL_SLICE], cfg, head=head)
        out[:, s : s + len(x)] = q @ x.astype(np.float64).T
        progress.advance(len(x))  # pool rows scored, for the diagnostic's bar
    return out


@dataclass
class _Side:
    """Per-token factors of some rows, concatenated: ``factors[k]`` ``[T, *]``, token -> chunk -> row."""

    factors: dict[str, torch.Tensor]
    token_chunk: torch.Tensor  # [T] chunk index of each token
    chunk_row: torch.Tensor  # [C] row index (within these rows) of each chunk
    n_rows: int


def _side(model: Any, head: RiseHead, rows: Sequence[EncodedRow], cfg: RiseConfig, whole: bool, pad: int) -> _Side:
    """Factors of ``rows``: RISE chunks (``whole=False``) or each row as one sequence (``whole=True``)."""
    chunks: list[EncodedRow] = []
    owner: list[int] = []
    for i, row in enumerate(rows):
        parts = [row] if whole else chunk_row(row, cfg)
        chunks += parts
        owner += [i] * len(parts)
    limit = getattr(model.config, "max_position_embeddings", None)
    if whole and limit and max(len(c) for c in chunks) > limit:
        raise DataError(f"a row has more tokens than the model's {limit} positions; the exact kernel needs whole rows")
    batch = collate(chunks, pad)
    dev = head.weight.device
    ids, att = batch["input_ids"].to(dev), batch["attention_mask"].to(dev)
    tm = batch["target_mask"].to(dev) & att.bool()
    tm[:, 0] = False
    b_idx, t_idx = tm.nonzero(as_tuple=True)
    with torch.inference_mode():
        h = hidden_states(model, ids, att)[b_idx, t_idx - 1].double()
        sup = select_support(head.logits(h), ids[b_idx, t_idx], cfg)
    r = sup.dense(head.vocab_size)
    factors = {"r": r, "h": h}
    if any("g" in c for c in cfg.channels):
        factors["g"] = r @ head.weight.double()
    if cfg.normalize_tokens:
        factors = {k: l2_normalize(v, cfg.norm_eps) for k, v in factors.items()}
    return _Side(factors, b_idx.cpu(), torch.tensor(owner), len(rows))


def _chunk_gram(a: _Side, b: _Side, cfg: RiseConfig) -> torch.Tensor:
    """``<u_i, u_j>`` of every chunk of ``a`` with every chunk of ``b`` (unnormalised chunk vectors)."""
    lam = {"rh": cfg.lam_rh, "gh": cfg.lam_gh, "rg": cfg.lam_rg}
    tokens = torch.zeros((a.token_chunk.numel(), b.token_chunk.numel()), dtype=torch.float64)
    for c in cfg.channels:
        f1, f2 = CHANNEL_FACTORS[c]
        tokens += lam[c] ** 2 * (a.factors[f1] @ b.factors[f1].T).cpu() * (a.factors[f2] @ b.factors[f2].T).cpu()
    ca, cb = a.chunk_row.numel(), b.chunk_row.numel()
    per_a = torch.zeros((ca, tokens.shape[1]), dtype=torch.float64).index_add_(0, a.token_chunk, tokens)
    return torch.zeros((ca, cb), dtype=torch.float64).index_add_(1, b.token_chunk, per_a)


def _chunk_weights(side: _Side, self_gram: torch.Tensor, cfg: RiseConfig) -> torch.Tensor:
    """Weight of each chunk vector in its row vector: 1 / chunks of the row, over its norm if normalised."""
    counts = torch.bincount(side.chunk_row, minlength=side.n_rows).double()
    w = 1.0 / counts[side.chunk_row]
    if cfg.normalize_signature:  # as l2_normalize: divide by max(norm, eps); zero vectors stay zero
        norm = self_gram.diagonal().clamp(min=0).sqrt().clamp(min=cfg.norm_eps)
        w = w / torch.where(norm > 0, norm, torch.ones_like(norm))
    return w


def _row_gram(gram: torch.Tensor, a: _Side, wa: torch.Tensor, b: _Side, wb: torch.Tensor) -> torch.Tensor:
    weighted = gram * wa[:, None] * wb[None, :]
    per_a = torch.zeros((a.n_rows, weighted.shape[1]), dtype=torch.float64).index_add_(0, a.chunk_row, weighted)
    return torch.zeros((a.n_rows, b.n_rows), dtype=torch.float64).index_add_(1, b.chunk_row, per_a)


def factor_kernel(
    model: Any,
    pad_id: int,
    queries: Sequence[EncodedRow],
    pool: Sequence[EncodedRow],
    cfg: RiseConfig,
    *,
    whole_rows: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inner products of the unsketched row vectors ``Phi`` of RISE settings ``cfg`` (sketches ignored).

    ``Phi`` = mean over a row's chunks of its chunk vectors (each normalised when ``normalize_signature``;
    ``whole_rows=True``: one chunk per row, its every target). RISE's signature is ``Phi / |Phi|``.

    Returns:
        ``(kernel [Q, N], |Phi(query)| [Q], |Phi(row)| [N])``, float64.
    """
    head = RiseHead.from_model(model, cfg.replace(sketch="identity", check_logits=False))
    qs = _side(model, head, queries, cfg, whole_rows, pad_id)
    q_self = _chunk_gram(qs, qs, cfg)
    wq = _chunk_weights(qs, q_self, cfg)
    q_norm = _row_gram(q_self, qs, wq, qs, wq).diagonal().clamp(min=0).sqrt()
    kernel = np.empty((len(queries), len(pool)))
    x_norm = np.empty(len(pool))
    for s in range(0, len(pool), POOL_SLICE // 4):
        xs = _side(model, head, pool[s : s + POOL_SLICE // 4], cfg, whole_rows, pad_id)
        x_self = _chunk_gram(xs, xs, cfg)
        wx = _chunk_weights(xs, x_self, cfg)
        kernel[:, s : s + xs.n_rows] = _row_gram(_chunk_gram(qs, xs, cfg), qs, wq, xs, wx).numpy()
        x_norm[s : s + xs.n_rows] = _row_gram(x_self, xs, wx, xs, wx).diagonal().clamp(min=0).sqrt().numpy()
        progress.advance(xs.n_rows)
    return kernel, q_norm.numpy(), x_norm


def cosine(kernel: np.ndarray, q_norm: np.ndarray, x_norm: np.ndarray, eps: float = 0.0) -> np.ndarray:
    """``kernel / (|q| |x|)`` with each norm floored at ``eps`` (zero vectors score 0)."""
    qn = np.maximum(q_norm, eps)[:, None]
    xn = np.maximum(x_norm, eps)[None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((qn > 0) & (xn > 0), kernel / (qn * xn), 0.0)


def unsketched_scores(
    model: Any, pad_id: int, queries: Sequence[EncodedRow], pool: Sequence[EncodedRow], cfg: RiseConfig
) -> np.ndarray:
    """RISE scores without sketches: what sketched RISE estimates (``[Q, N]``)."""
    kernel, qn, xn = factor_kernel(model, pad_id, queries, pool, cfg)
    return cosine(kernel, qn, xn, cfg.norm_eps) if cfg.normalize_signature else kernel


def exact_scores(
    model: Any, pad_id: int, queries: Sequence[EncodedRow], pool: Sequence[EncodedRow], cfg: RiseConfig
) -> tuple[np.ndarray, np.ndarray]:
    """The exact LM-head TracIn kernel of whole rows: ``(raw, cosine)`` ``[Q, N]``.

    ``raw[q, x] = <dL_q/dW, dL_x/dW>`` with ``L`` the summed token loss over the scored tokens.
    """
    kernel, qn, xn = factor_kernel(model, pad_id, queries, pool, exact_config(cfg), whole_rows=True)
    return kernel, cosine(kernel, qn, xn)
