"""Zero-shot data valuation: fuse per-query scores into one value per training row.

``mean`` averages score rows (for vector methods: one pass against the mean query vector); ``rrf`` is
reciprocal-rank fusion, ``sum_q 1 / (rrf_k + rank_q(n))`` with rank 1 the best row of query q. Rows with
equal scores share the best (smallest) rank of their group, so the result does not depend on row order.
"""

from __future__ import annotations

import numpy as np

from rise_exp.core.errors import ConfigError, DataError, allowed
from rise_exp.retrieval.search import IndexLike, all_scores

MODES = ("mean", "rrf")


def _check_mode(mode: str, rrf_k: float) -> None:
    if mode not in MODES:
        raise allowed("valuation mode", mode, MODES)
    if mode == "rrf" and not rrf_k >= 0:
        raise ConfigError(f"valuation rrf_k must be >= 0, got {rrf_k}")


def ranks(scores: np.ndarray) -> np.ndarray:
    """Competition ranks per row of ``scores`` ``[Q, N]``: 1 = highest; ties share the smallest rank."""
    s = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-s, axis=1, kind="stable")
    sorted_s = np.take_along_axis(s, order, axis=1)
    pos = np.arange(1, s.shape[1] + 1, dtype=np.float64)[None, :].repeat(s.shape[0], axis=0)
    new_group = np.ones_like(sorted_s, dtype=bool)
    new_group[:, 1:] = sorted_s[:, 1:] != sorted_s[:, :-1]
    group_rank = np.maximum.accumulate(np.where(new_group, pos, 0.0), axis=1)
    out = np.empty_like(group_rank)
    np.put_along_axis(out, order, group_rank, axis=1)
    return out


def fuse_scores(scores: np.ndarray, mode: str = "mean", rrf_k: float = 60.0) -> np.ndarray:
    """One value per row from per-query scores ``[Q, N]``.

    Args:
        scores: Per-query scores, higher = more influential.
        mode: ``"mean"`` (average over queries) or ``"rrf"`` (reciprocal-rank fusion).
        rrf_k: The RRF smoothing constant (60 in Cormack et al., 2009).

    Returns:
        float32 ``[N]``.

    Raises:
        ConfigError: unknown mode or negative ``rrf_k``.
        DataError: scores that are not a non-empty ``[Q, N]`` matrix or contain NaN.
    """
    _check_mode(mode, rrf_k)
    s = np.asarray(scores)
    if s.ndim != 2 or s.shape[0] == 0:
        raise DataError(f"scores must be [num_queries >= 1, num_rows], got shape {s.shape}")
    if np.isnan(s).any():
        raise DataError("scores contain NaN; cannot fuse them")
    if mode == "mean":
        return s.astype(np.float64).mean(axis=0).astype(np.float32)
    return (1.0 / (rrf_k + ranks(s))).sum(axis=0).astype(np.float32)


def mean_vector(vectors: np.ndarray) -> np.ndarray:
    """The mean of query vectors ``[Q, dim]`` -> float32 ``[dim]``: scoring against it gives every row its
    mean score over the queries (inner products are linear).

    Raises:
        DataError: not a non-empty 2-D array, or non-finite values.
    """
    s = np.asarray(vectors, dtype=np.float64)
    if s.ndim != 2 or s.shape[0] == 0:
        raise DataError(f"query vectors must be [num_queries >= 1, dim], got shape {s.shape}")
    if not np.isfinite(s).all():
        raise DataError("query vectors contain NaN or inf")
    return s.mean(axis=0).astype(np.float32)


def value_against_index(
    index: IndexLike,
    signatures: np.ndarray,
    mode: str = "mean",
    *,
    rrf_k: float = 60.0,
    block_rows: int | None = None,
    query_chunk: int = 64,
    max_cells: int = 1 << 22,
) -> np.ndarray:
    """Value of every indexed row against a target set of query signatures, float32 ``[N]``.

    ``mean`` scores each row against :func:`mean_vector` (equal to averaging the rows' scores over
    the queries), one streamed pass over the blocks: memory ``O(N)`` (the values) plus one block.
    ``rrf`` ranks the rows per query and fuses the ranks, processing at most ``query_chunk`` queries and
    ``max_cells`` query x row cells at a time (at least one query), so memory stays ``O(N)`` too.
    """
    _check_mode(mode, rrf_k)
    if mode == "mean":
        return all_scores(index, mean_vector(signatures)[None, :], block_rows=block_rows)[0]
    s = np.asarray(signatures, dtype=np.float32)
    if s.ndim != 2 or s.shape[0] == 0:
        raise DataError(f"query signatures must be [num_queries >= 1, dim], got shape {s.shape}")
    if not isinstance(index, np.ndarray) and not hasattr(index, "iter_blocks"):
        index = list(index)  # a one-shot iterable of blocks is read once per chunk
    n = index.shape[0] if isinstance(index, np.ndarray) else getattr(index, "num_rows", None)
    if n is None:
        n = max((int(r.max()) + 1 for r, _ in index if len(r)), default=1)
    chunk = max(1, min(int(query_chunk), int(max_cells) // max(int(n), 1)))
    total = np.zeros(0, dtype=np.float64)
    for start in range(0, s.shape[0], chunk):
        scores = all_scores(index, s[start : start + chunk], block_rows=block_rows)
        part = (1.0 / (rrf_k + ranks(scores))).sum(axis=0)
        total = part if start == 0 else total + part
    return total.astype(np.float32)


def chosen_rows(values: np.ndarray, keep: str, fraction: float | None, count: int | None) -> np.ndarray:
    """Row positions of the kept rows, best first (ties keep pool order)."""
    n = len(values)
    k = min(n, count if count is not None else max(1, int(round(fraction * n))))
    order = np.argsort(-values if keep == "top" else values, kind="stable")
    return order[:k]
