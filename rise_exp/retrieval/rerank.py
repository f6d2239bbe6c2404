"""Re-ranking of an approximate backend's candidates with the index's stored vectors.

An approximate searcher (:mod:`rise_exp.retrieval.ann`) proposes each query's ``R`` best candidates; their
stored vectors are scored exactly and each query keeps its k best, ranked and tie-broken as
:func:`~rise_exp.retrieval.search.topk` ranks them. The result equals exact search wherever the candidates
contain exact search's top k.

One pass over the index blocks: a block's candidate rows are read (a memory-mapped block only at those
rows), converted to float32 a few hundred rows at a time into a reused buffer, and each (query, candidate)
pair gets its inner product. Work is ``Q * R * dim`` multiply-adds plus one read of each distinct candidate
row; memory is ``O(Q * R + block_rows * dim)`` whatever the pool size.
"""

from __future__ import annotations

import numpy as np
import torch

from rise_exp.core.errors import DataError
from rise_exp.retrieval.search import IndexLike, iter_blocks, topk_among

#: Candidate rows converted to float32 at once (a buffer that stays in cache, as in exact search).
CAST_ROWS = 256


class _Pairs:
    """The (query, candidate) pairs grouped by candidate row: row ``want[u]``'s pairs are
    ``pair[start[u] : start[u + 1]]`` (flat positions into the ``[Q, R]`` candidate matrix)."""

    def __init__(self, cand: np.ndarray) -> None:
        flat = cand.ravel()
        pairs = np.flatnonzero(flat >= 0)
        self.want, inverse, counts = np.unique(flat[pairs], return_inverse=True, return_counts=True)
        order = np.argsort(inverse, kind="stable")
        self.pair = pairs[order]
        self.start = np.concatenate([[0], np.cumsum(counts)])
        self.found = np.zeros(len(self.want), dtype=bool)

    def of(self, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Flat pair positions of unique rows ``u`` and, for each, its index into ``u``."""
        counts = self.start[u + 1] - self.start[u]
        local = np.repeat(np.arange(len(u)), counts)
        offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        return self.pair[self.start[u][local] + offsets], local


def rerank(
    index: IndexLike,
    queries: np.ndarray,
    candidates: np.ndarray,
    k: int,
    *,
    largest: bool = True,
    ties: str = "low",
) -> tuple[np.ndarray, np.ndarray]:
    """Each query's k best rows among its ``candidates`` (int64 ``[Q, R]``, -1 = none) by exact inner product.

    Returns ``(scores float32, rows int64)`` ``[Q, min(k, R)]`` as :func:`~rise_exp.retrieval.search.topk_among`.
    """
    q = np.asarray(queries, dtype=np.float32)
    cand = np.asarray(candidates, dtype=np.int64)
    if q.ndim != 2 or cand.ndim != 2 or len(q) != len(cand):
        raise DataError(f"queries {q.shape} and candidates {cand.shape} must be [Q, dim] and [Q, R]")
    scores = np.full(cand.size, np.nan, dtype=np.float32)
    pairs = _Pairs(cand)
    buf: torch.Tensor | None = None
    for block_rows, vecs in iter_blocks(index) if len(pairs.want) else ():
        if vecs.shape[1] != q.shape[1]:
            raise DataError(f"queries have dim {q.shape[1]} but the index has dim {vecs.shape[1]}")
        u = np.minimum(np.searchsorted(pairs.want, block_rows), len(pairs.want) - 1)
        hit = np.flatnonzero(pairs.want[u] == block_rows)
        if not hit.size:
            continue
        pairs.found[u[hit]] = True
        if buf is None:
            buf = torch.empty((CAST_ROWS, q.shape[1]), dtype=torch.float32)
        for s in range(0, hit.size, CAST_ROWS):
            part = hit[s : s + CAST_ROWS]
            x = buf[: part.size]
            x.copy_(torch.from_numpy(np.ascontiguousarray(vecs[part])))  # torch: a vectorised cast
            flat, local = pairs.of(u[part])
            scores[flat] = np.einsum("ij,ij->i", x.numpy()[local], q[flat // cand.shape[1]])
    if not pairs.found.all():
        missing = pairs.want[~pairs.found][:5].tolist()
        raise DataError(f"the index has no rows {missing} (candidates of an approximate search)")
    return topk_among(scores.reshape(cand.shape), cand, k, largest=largest, ties=ties)
