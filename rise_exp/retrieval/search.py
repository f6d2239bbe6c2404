"""Exact inner-product search streamed over index blocks, with an optional FAISS backend.

Scores are computed in float32 one block at a time and merged into a running top-k, so memory is
``O(Q * (k + block_rows))`` whatever the pool size. Ties are broken by row id (smaller first by
default, ``ties="high"`` for larger first), for both ``largest=True`` and ``largest=False``: each
(score, row) pair is packed into one uint64 key whose order is the wanted order, so selection never has
equal keys. The bottom K of a stable descending sort (the attribution protocol's bottom set) is
``topk(..., largest=False, ties="high")``.

The exact path runs at the pace of the product itself: float16 blocks are converted a few hundred rows
at a time into one reused float32 buffer (torch's vectorised conversion; NumPy's float16 cast costs
three times the product), each piece goes through one BLAS product into a reused ``[Q, block_rows]``
score buffer, and ``torch.topk`` picks each block's k best (a tenth of the cost of ``np.argpartition``)
before a merge with the running top-k. ``benchmarks/bench_search.py`` prints its time beside a plain
NumPy float32 product of the same shapes.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Iterator

import numpy as np
import torch

from rise_exp.core.errors import ConfigError, DataError, allowed
from rise_exp.index import SignatureIndex

Blocks = Iterable[tuple[np.ndarray, np.ndarray]]
IndexLike = SignatureIndex | np.ndarray | Blocks
BACKENDS = ("numpy", "faiss")
TIES = ("low", "high")
DEFAULT_BLOCK_ROWS = 16384
_LOW = np.uint64(0xFFFFFFFF)
_SHIFT = np.uint64(32)
_CAST_ROWS = 256


def iter_blocks(index: IndexLike, block_rows: int | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``(row ids, vectors)`` blocks of an index, a matrix, or an iterable of blocks.

    Blocks longer than ``block_rows`` are split, so no block handed out exceeds it.
    """
    if block_rows is not None and block_rows < 1:
        raise ConfigError(f"search block_rows must be >= 1, got {block_rows}")
    if isinstance(index, np.ndarray):
        if index.ndim != 2:
            raise DataError(f"an index matrix must be 2-D [rows, dim], got shape {index.shape}")
        source: Iterable = [(np.arange(index.shape[0], dtype=np.int64), index)]
        block_rows = block_rows or DEFAULT_BLOCK_ROWS
    elif isinstance(index, SignatureIndex):
        source = index.iter_blocks()
    else:
        source = index
    for rows, vecs in source:
        step = block_rows or max(len(rows), 1)
        for start in range(0, len(rows), step):
            yield np.asarray(rows[start : start + step], dtype=np.int64), vecs[start : start + step]


def _queries(queries: np.ndarray) -> np.ndarray:
    q = np.asarray(queries, dtype=np.float32)
    if q.ndim != 2:
        raise DataError(f"queries must be 2-D [num_queries, dim], got shape {q.shape}")
    return q


def _ordered_bits(scores: np.ndarray) -> np.ndarray:
    """Map float32 to uint32 so that unsigned order equals numeric order (-0.0 folded onto +0.0)."""
    bits = (scores.astype(np.float32) + np.float32(0.0)).view(np.uint32)
    neg = (bits >> np.uint32(31)).astype(bool)
    return np.where(neg, ~bits, bits | np.uint32(0x80000000)).astype(np.uint64)


def _unordered_bits(keys_high: np.ndarray) -> np.ndarray:
    bits = keys_high.astype(np.uint32)
    pos = (bits >> np.uint32(31)).astype(bool)
    return np.where(pos, bits & np.uint32(0x7FFFFFFF), ~bits).view(np.float32)


def _low_bits(rows: np.ndarray, invert: bool) -> np.ndarray:
    r = rows.astype(np.uint64)
    return (_LOW - r) if invert else r


def _keys(scores: np.ndarray, rows: np.ndarray, invert: bool) -> np.ndarray:
    """Unique uint64 keys; the k largest (largest=True) or smallest keys are the wanted top-k."""
    return (_ordered_bits(scores) << _SHIFT) | _low_bits(rows, invert)[None, :]


def _as_tensor(x: np.ndarray) -> torch.Tensor:
    """A tensor sharing ``x``'s memory (read-only memory maps included: the tensor is only read)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "The given NumPy array is not writable"
        return torch.from_numpy(x)


class BlockScorer:
    """``q @ vecs.T`` in float32 for one block after another, in buffers reused from block to block.

    Float16 (or other non-float32) blocks are converted ``cast_rows`` rows at a time into a small
    float32 buffer that stays in cache for its product, never as a float32 copy of the whole block.
    """

    def __init__(self, q: np.ndarray, cast_rows: int = _CAST_ROWS) -> None:
        self.q = q
        self.cast_rows = cast_rows
        self._out = np.empty(0, dtype=np.float32)
        self._buf: torch.Tensor | None = None

    def __call__(self, vecs: np.ndarray) -> np.ndarray:
        """Scores ``[Q, n]`` of the block's ``n`` rows; valid until the next call."""
        n = vecs.shape[0]
        if self._out.size < self.q.shape[0] * n:
            self._out = np.empty(self.q.shape[0] * n, dtype=np.float32)
        out = self._out[: self.q.shape[0] * n].reshape(self.q.shape[0], n)
        if vecs.dtype == np.float32:
            return np.matmul(self.q, vecs.T, out=out)
        if self._buf is None:
            self._buf = torch.empty((self.cast_rows, vecs.shape[1]), dtype=torch.float32)
        buf, src = self._buf, _as_tensor(np.ascontiguousarray(vecs))
        for start in range(0, n, self.cast_rows):
            m = min(self.cast_rows, n - start)
            buf[:m].copy_(src[start : start + m])
            np.matmul(self.q, buf[:m].numpy().T, out=out[:, start : start + m])
        return out


def block_scores(q: np.ndarray, vecs: np.ndarray, cast_rows: int = _CAST_ROWS) -> np.ndarray:
    """``q @ vecs.T`` in float32 ``[Q, n]`` (a fresh array; :class:`BlockScorer` reuses its buffers)."""
    return BlockScorer(q, cast_rows)(vecs).copy()


def _block_keys(scores: np.ndarray, rows: np.ndarray, k: int, largest: bool, invert: bool) -> np.ndarray:
    """Keys of each query's k best entries of one block (all entries' keys when ties cross the k-th place).

    The k + 1 best scores are found by ``torch.topk`` on the float scores; only when some query's
    (k + 1)-th score equals its k-th (a tie across the k-th place, which the row-id rule must break) are
    keys built for the whole block.
    """
    n = scores.shape[1]
    if n > k:
        best, part = torch.topk(_as_tensor(scores), k + 1, dim=1, largest=largest, sorted=True)
        if bool((best[:, k - 1] != best[:, k]).all()):  # no tie at any query's k-th place
            pos = part[:, :k].numpy()
            return (_ordered_bits(best[:, :k].numpy()) << _SHIFT) | _low_bits(rows[pos], invert)
    return _keys(scores, rows, invert)


def _select(keys: np.ndarray, k: int, largest: bool) -> np.ndarray:
    """The k best keys per row, sorted best first."""
    if keys.shape[1] > k:
        part = np.argpartition(keys, keys.shape[1] - k if largest else k - 1, axis=1)
        part = part[:, -k:] if largest else part[:, :k]
        keys = np.take_along_axis(keys, part, axis=1)
    keys = np.sort(keys, axis=1)
    return keys[:, ::-1] if largest else keys


def _decode(keys: np.ndarray, invert: bool) -> tuple[np.ndarray, np.ndarray]:
    low = keys & _LOW
    rows = (_LOW - low) if invert else low
    return np.ascontiguousarray(_unordered_bits(keys >> _SHIFT)), rows.astype(np.int64)


def _faiss_block(q: np.ndarray, vecs: np.ndarray, k: int, largest: bool) -> tuple[np.ndarray, np.ndarray]:
    import faiss

    flat = faiss.IndexFlatIP(vecs.shape[1])
    flat.add(np.ascontiguousarray(vecs, dtype=np.float32))
    dist, pos = flat.search(np.ascontiguousarray(q if largest else -q), min(k, vecs.shape[0]))
    return (dist if largest else -dist).astype(np.float32), pos


def topk(
    index: IndexLike,
    queries: np.ndarray,
    k: int,
    *,
    largest: bool = True,
    block_rows: int | None = None,
    backend: str = "numpy",
    ties: str = "low",
    scorer: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k (or bottom-k) rows by inner product with each query.

    Args:
        index: A :class:`SignatureIndex`, an in-memory ``[N, dim]`` matrix, or ``(rows, vectors)`` blocks.
        queries: ``[Q, dim]`` query vectors.
        k: Results per query; at most N are returned.
        largest: True for the highest scores, False for the lowest.
        block_rows: Split blocks to at most this many rows (bounds memory).
        backend: ``"numpy"`` (exact, default) or ``"faiss"`` (``faiss.IndexFlatIP`` per block).
        ties: ``"low"``: among equal scores the smaller row id comes first; ``"high"``: the larger.
        scorer: ``(queries, block) -> float32 [Q, n]`` scores of one block, for blocks that are not plain
            vectors (compressed codes, :mod:`rise_exp.retrieval.ann`); default: the inner product.

    Returns:
        ``(scores, rows)``: float32 and int64 ``[Q, min(k, N)]``, best first, ties as ``ties`` says.

    Raises:
        ConfigError: bad ``k``, ``block_rows`` or ``backend``, or faiss requested but not installed.
        DataError: queries of the wrong shape.
    """
    if backend not in BACKENDS:
        raise allowed("search backend", backend, BACKENDS)
    if ties not in TIES:
        raise allowed("search ties", ties, TIES)
    invert = largest == (ties == "low")
    if backend == "faiss":
        try:
            import faiss  # noqa: F401
        except ImportError:
            raise ConfigError(
                "search backend 'faiss' needs the faiss package (pip install faiss-cpu or faiss-gpu); "
                "use backend='numpy' for exact streaming search"
            ) from None
    if int(k) < 1:
        raise ConfigError(f"top-k needs k >= 1, got {k}")
    k = int(k)
    q = _queries(queries)
    best = np.zeros((q.shape[0], 0), dtype=np.uint64)
    product = BlockScorer(q)
    for rows, vecs in iter_blocks(index, block_rows):
        if scorer is None and vecs.shape[1] != q.shape[1]:
            raise DataError(f"queries have dim {q.shape[1]} but the index has dim {vecs.shape[1]}")
        if rows.size and int(rows.max()) > 0xFFFFFFFF:
            raise DataError("row ids above 2**32 - 1 are not supported by search")
        if scorer is not None:
            keys = _block_keys(np.ascontiguousarray(scorer(q, vecs), dtype=np.float32), rows, k, largest, invert)
        elif backend == "faiss":
            scores, pos = _faiss_block(q, vecs, k, largest)
            keys = (_ordered_bits(scores) << _SHIFT) | _low_bits(rows[pos], invert)
        else:
            keys = _block_keys(product(np.asarray(vecs)), rows, k, largest, invert)
        best = _select(np.concatenate([best, keys], axis=1), k, largest)
    return _decode(best, invert)


def topk_among(
    scores: np.ndarray, rows: np.ndarray, k: int, *, largest: bool = True, ties: str = "low"
) -> tuple[np.ndarray, np.ndarray]:
    """Each query's k best of its own candidates: ``scores`` float32 and ``rows`` int64 ``[Q, R]`` (row -1: no
    candidate), ranked and tie-broken exactly as :func:`topk` ranks a pool holding them.

    Returns ``(scores, rows)`` ``[Q, min(k, R)]``, best first; a query with fewer than k candidates gets rows
    -1 and scores -inf (``largest``) or +inf after them.
    """
    if ties not in TIES:
        raise allowed("search ties", ties, TIES)
    if int(k) < 1:
        raise ConfigError(f"top-k needs k >= 1, got {k}")
    invert = largest == (ties == "low")
    rows = np.asarray(rows, dtype=np.int64)
    valid = rows >= 0
    if rows.size and int(rows.max()) > 0xFFFFFFFF:
        raise DataError("row ids above 2**32 - 1 are not supported by search")
    keys = (_ordered_bits(np.asarray(scores, dtype=np.float32)) << _SHIFT) | _low_bits(np.where(valid, rows, 0), invert)
    none = np.uint64(0) if largest else np.uint64(0xFFFFFFFFFFFFFFFF)  # below (above) every real key
    keys = _select(np.where(valid, keys, none), min(int(k), rows.shape[1]), largest)
    out_scores, out_rows = _decode(keys, invert)
    missing = keys == none
    out_rows[missing] = -1
    out_scores[missing] = -np.inf if largest else np.inf
    return out_scores, out_rows


def all_scores(index: IndexLike, queries: np.ndarray, *, block_rows: int | None = None) -> np.ndarray:
    """Inner products of every query with every row, float32 ``[Q, N]`` in row order.

    For an iterable of blocks, N is one more than the largest row id.
    """
    q = _queries(queries)
    if isinstance(index, np.ndarray):
        n = index.shape[0]
    elif isinstance(index, SignatureIndex):
        n = index.num_rows
    else:
        index = list(index)
        n = max((int(r.max()) + 1 for r, _ in index if len(r)), default=0)
    out = np.zeros((q.shape[0], n), dtype=np.float32)
    product = BlockScorer(q)
    for rows, vecs in iter_blocks(index, block_rows):
        if vecs.shape[1] != q.shape[1]:
            raise DataError(f"queries have dim {q.shape[1]} but the index has dim {vecs.shape[1]}")
        out[:, rows] = product(np.asarray(vecs))
    return out
