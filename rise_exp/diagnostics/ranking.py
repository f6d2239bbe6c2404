"""Per-query agreement between two score matrices ``[Q, N]``: Spearman, top-N overlap, positives in the top N."""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

from rise_exp.retrieval.metrics import rank_rows


def spearman_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman correlation of ``a[q]`` and ``b[q]`` for every query ``q`` (ties share their mean rank).

    A row that is constant in either matrix has no rank correlation: NaN.
    """
    ra = rankdata(np.asarray(a, dtype=np.float64), axis=1)
    rb = rankdata(np.asarray(b, dtype=np.float64), axis=1)
    ra -= ra.mean(axis=1, keepdims=True)
    rb -= rb.mean(axis=1, keepdims=True)
    den = np.linalg.norm(ra, axis=1) * np.linalg.norm(rb, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (ra * rb).sum(axis=1) / den, np.nan)


def top_overlap_rows(a: np.ndarray, b: np.ndarray, n: int) -> np.ndarray:
    """Fraction of the top-``n`` rows of ``a[q]`` that are among the top ``n`` of ``b[q]`` (ties: row order)."""
    n = min(n, a.shape[1])
    out = np.empty(a.shape[0])
    for q in range(a.shape[0]):
        out[q] = len(set(rank_rows(a[q])[:n]) & set(rank_rows(b[q])[:n])) / n
    return out


def positives_in_top(scores: np.ndarray, labels: np.ndarray, n: int) -> np.ndarray:
    """Number of positive rows among each query's top ``n`` (labels ``[N]`` or ``[Q, N]``)."""
    y = np.broadcast_to(np.asarray(labels, dtype=bool), scores.shape)
    return np.asarray([int(y[q, rank_rows(scores[q])[:n]].sum()) for q in range(scores.shape[0])])
