"""Re-ranking of an approximate backend's candidates with the index's stored vectors.

An approximate searcher (:mod:`rise_exp.retrieval.ann`) proposes each query's ``R`` best candidates; their
stored vectors are read (``R`` row reads per query, a few queries at a time) and scored exactly, and each
query keeps its k best by the exact scores, ranked and tie-broken as :func:`~rise_exp.retrieval.search.topk`
ranks them. The result equals exact search wherever the candidates contain exact search's top k; memory is
``O(query_chunk * R * dim)``, bounded by ``max_bytes`` whatever the pool size.
"""

from __future__ import annotations

import numpy as np
import torch

from rise_exp.core.errors import DataError
from rise_exp.retrieval.search import IndexLike, iter_blocks, topk_among

#: Bytes of gathered vectors held at once (a chunk of queries' candidates, in the stored dtype).
MAX_GATHER_BYTES = 1 << 27


def gather_rows(index: IndexLike, rows: np.ndarray) -> np.ndarray:
    """Stored vectors of the sorted, distinct row ids ``rows`` ``[U, dim]``, in the index's dtype.

    One pass over the blocks' row ids; a memory-mapped block is read only at the wanted rows.
    """
    want = np.asarray(rows, dtype=np.int64)
    out: np.ndarray | None = None
    found = np.zeros(len(want), dtype=bool)
    for block_rows, vecs in iter_blocks(index):
        if not len(want):
            break
        pos = np.minimum(np.searchsorted(want, block_rows), len(want) - 1)
        hit = np.flatnonzero(want[pos] == block_rows)
        if hit.size:
            if out is None:
                out = np.empty((len(want), vecs.shape[1]), dtype=vecs.dtype)
            out[pos[hit]] = vecs[hit]
            found[pos[hit]] = True
    if not found.all():
        raise DataError(f"the index has no rows {want[~found][:5].tolist()} (candidates of an approximate search)")
    return out if out is not None else np.zeros((0, 0), dtype=np.float32)


def rerank(
    index: IndexLike,
    queries: np.ndarray,
    candidates: np.ndarray,
    k: int,
    *,
    largest: bool = True,
    ties: str = "low",
    max_bytes: int = MAX_GATHER_BYTES,
) -> tuple[np.ndarray, np.ndarray]:
    """Each query's k best rows among its ``candidates`` (int64 ``[Q, R]``, -1 = none) by exact inner product.

    Returns ``(scores float32, rows int64)`` ``[Q, min(k, R)]`` as :func:`~rise_exp.retrieval.search.topk_among`.
    ``index`` is read once per chunk of queries, so it must be re-iterable (an index, a matrix or a list).
    """
    q = np.asarray(queries, dtype=np.float32)
    cand = np.asarray(candidates, dtype=np.int64)
    if q.ndim != 2 or cand.ndim != 2 or len(q) != len(cand):
        raise DataError(f"queries {q.shape} and candidates {cand.shape} must be [Q, dim] and [Q, R]")
    scores = np.full(cand.shape, np.nan, dtype=np.float32)
    itemsize = np.dtype(getattr(index, "dtype", np.float32)).itemsize
    per_query = max(1, cand.shape[1] * q.shape[1] * max(itemsize, 4))
    step = max(1, max_bytes // per_query)
    for start in range(0, len(q), step):
        c = cand[start : start + step]
        want = np.unique(c[c >= 0])
        if not want.size:
            continue
        stored = gather_rows(index, want)
        if stored.shape[1] != q.shape[1]:
            raise DataError(f"queries have dim {q.shape[1]} but the index has dim {stored.shape[1]}")
        vecs = torch.from_numpy(np.ascontiguousarray(stored)).to(torch.float32)  # torch: a vectorised cast
        for j, rows in enumerate(c):
            ok = np.flatnonzero(rows >= 0)
            x = torch.index_select(vecs, 0, torch.from_numpy(np.searchsorted(want, rows[ok])))
            scores[start + j, ok] = torch.mv(x, torch.from_numpy(q[start + j])).numpy()
    return topk_among(scores, cand, k, largest=largest, ties=ties)
