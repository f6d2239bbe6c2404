"""Compressed and approximate search behind the one interface of :func:`rise_exp.retrieval.search.topk`.

:func:`open_searcher` turns a vector index (a :class:`SignatureIndex`, a matrix or ``(rows, vectors)``
blocks) and the ``search.*`` settings into a :class:`Searcher` whose ``topk(queries, k, largest, ties)``
returns ``(scores, rows)`` like the exact search:

- ``exact``: the streamed exact search (:mod:`rise_exp.retrieval.search`); nothing is built.
- ``simhash``: each stored row keeps ``bits`` sign bits ``b = [P x > 0]`` of random hyperplanes ``P``
  and its norm; queries stay float. A row's score is the asymmetric estimate
  ``|x| sqrt(pi/2) / bits * <P q, 2b - 1>``, unbiased for ``<q, x>`` when the hyperplane entries are
  Gaussian (``E[sign(<p, x>) <p, q>] = sqrt(2/pi) <q, x> / |x|``). ``P`` is a sparse random sign matrix
  (``search.density`` nonzeros per entry, default ``1/sqrt(dim)``, entries scaled to unit variance), so it
  costs megabytes even for 24,576-wide RISE signatures; with ~``density * dim`` terms per projection the
  sign statistics are Gaussian in practice (the tests measure the estimate and its recall). We chose the
  asymmetric estimate over Hamming distance on signed queries because it keeps the queries' magnitudes
  (better recall at equal bits) and scores with a matrix product. Storage: ``bits / 8 + 4`` bytes a row.
- ``faiss_flat``: FAISS's exact inner-product index (``IndexFlatIP``, float32 in memory).
- ``faiss_ivfpq``: FAISS ``IndexIVFPQ`` (inner product; ``nlist`` clusters, ``pq_m`` bytes a row,
  ``nprobe`` clusters visited), trained on ``train_rows`` sampled rows: for pools of ~10M rows and more.

``search.rerank = R`` wraps an approximate backend: its R best candidates per query are re-scored exactly
with the index's stored vectors (:mod:`rise_exp.retrieval.rerank`), so the k returned are exact search's
wherever the candidates contain them.

Approximate backends return approximate scores; their order among equal scores is unspecified. SimHash
codes and IVF-PQ indexes built from an on-disk index are cached in ``<index>/search/<backend>-<key>/``
(the key hashes the settings and the index's block checksums), written to a temporary directory and
renamed, so later runs and concurrent ones reuse them. The bottom K of FAISS backends is the top K of
``-q``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from rise_exp.config.run_settings import SearchConfig
from rise_exp.core.errors import ConfigError, DataError
from rise_exp.core.hashing import config_hash
from rise_exp.index import SignatureIndex
from rise_exp.retrieval.rerank import rerank
from rise_exp.retrieval.search import IndexLike, iter_blocks, topk

log = logging.getLogger(__name__)

#: Subdirectory of an index directory holding the compressed copies of its vectors.
SEARCH_DIR = "search"
#: SimHash bits unpacked to float32 at once while scoring (16M: 64 MB, e.g. 2,048 rows of 8,192 bits).
UNPACK_CELLS = 1 << 24
#: SimHash with at least this share of the vectors' width in bits answers no faster than exact search (it
#: multiplies ``bits`` numbers a row and unpacks them; at width 1,024: 256 bits 0.3-0.5x exact's time, 512 bits
#: 0.5-1.1x, 1,024 bits 1.1-1.9x: ``benchmarks/bench_search.py``, docs/search.md), so such settings are warned about.
SIMHASH_SLOWER_SHARE = Fraction(1, 2)


class Searcher:
    """Answers top-k queries over an index; ``bytes_per_row`` is what it stores per row."""

    backend = "exact"

    def __init__(self, index: IndexLike) -> None:
        self.index = index
        self.bytes_per_row = float(getattr(index, "bytes_per_row", 0) or _matrix_bytes_per_row(index))
        self.build_seconds = 0.0

    def topk(
        self, queries: np.ndarray, k: int, *, largest: bool = True, ties: str = "low"
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(scores float32, rows int64)`` ``[Q, min(k, N)]``, best first."""
        return topk(self.index, queries, k, largest=largest, ties=ties)


def _matrix_bytes_per_row(index: Any) -> float:
    return float(index.shape[1] * index.dtype.itemsize) if isinstance(index, np.ndarray) else 0.0


def _source(index: IndexLike) -> tuple[Callable[[], Iterator[tuple[np.ndarray, np.ndarray]]], int, int]:
    """A re-iterable block source, its row count and dim."""
    if isinstance(index, SignatureIndex):
        return index.iter_blocks, index.num_rows, index.dim
    if isinstance(index, np.ndarray):
        return (lambda: iter_blocks(index)), index.shape[0], index.shape[1]
    blocks = list(index)
    n = sum(len(r) for r, _ in blocks)
    dim = int(blocks[0][1].shape[1]) if blocks else 0
    return (lambda: iter(blocks)), n, dim


def _cache_dir(index: IndexLike, name: str, params: dict[str, Any]) -> Path | None:
    if not isinstance(index, SignatureIndex):
        return None
    key = config_hash({"params": params, "shards": index.manifest.get("shards")}, n=12)
    return index.root / SEARCH_DIR / f"{name}-{key}"


def _publish(tmp: Path, final: Path) -> None:
    """Put a finished build directory in place (a concurrent build that finished first wins)."""
    try:
        os.replace(tmp, final)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not (final / "meta.json").is_file():
            raise


def _tmp_dir(final: Path) -> Path:
    tmp = final.with_name(f"{final.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    return tmp


# ---------------------------------------------------------------------------------------------- SimHash
class SimHashSearcher(Searcher):
    """Sign bits of sparse random projections, scored asymmetrically against float queries."""

    backend = "simhash"

    def __init__(self, index: IndexLike, cfg: SearchConfig) -> None:
        t0 = time.perf_counter()
        blocks, n, dim = _source(index)
        self.bits, self.dim = cfg.bits, dim
        if cfg.bits * SIMHASH_SLOWER_SHARE.denominator >= dim * SIMHASH_SLOWER_SHARE.numerator:
            log.warning(
                "search.bits=%d with vectors of width %d: SimHash multiplies %d numbers a row where exact search "
                "multiplies %d, so it answers no faster than search.backend=exact (docs/search.md); use bits < %d",
                cfg.bits,
                dim,
                cfg.bits,
                dim,
                dim * SIMHASH_SLOWER_SHARE.numerator // SIMHASH_SLOWER_SHARE.denominator,
            )
        density = cfg.density if cfg.density is not None else 1.0 / math.sqrt(max(dim, 1))
        self.planes = _sparse_planes(cfg.bits, dim, density, cfg.seed)
        self.dtype = np.dtype([("code", np.uint8, (cfg.bits // 8,)), ("norm", np.float32)])
        params = {"bits": cfg.bits, "density": density, "seed": cfg.seed, "dim": dim}
        final = _cache_dir(index, "simhash", params)
        if final is not None and (final / "meta.json").is_file():
            self.blocks = _load_blocks(final)
            log.info("simhash: reusing the codes in %s", final)
        else:
            tmp = _tmp_dir(final) if final is not None else None
            self.blocks = []
            written = 0
            for i, (rows, vecs) in enumerate(blocks()):
                codes = self.encode(np.asarray(vecs, dtype=np.float32))
                if tmp is not None:  # on disk, memory-mapped once published: RAM does not follow the pool
                    np.save(tmp / f"rows-{i:05d}.npy", np.asarray(rows, dtype=np.int64))
                    np.save(tmp / f"codes-{i:05d}.npy", codes)
                    written += 1
                else:
                    self.blocks.append((np.asarray(rows, dtype=np.int64), codes))
            if tmp is not None and final is not None:
                (tmp / "meta.json").write_text(json.dumps({**params, "blocks": written, "rows": n}))
                _publish(tmp, final)
                self.blocks = _load_blocks(final)
        self.index = self.blocks
        self.bytes_per_row = float(self.dtype.itemsize)
        self.build_seconds = time.perf_counter() - t0

    def _slices(self, n: int) -> list[slice]:
        """Row slices of ``n`` rows holding at most ``UNPACK_CELLS`` bits each (the float work buffers)."""
        step = max(1, UNPACK_CELLS // self.bits)
        return [slice(s, s + step) for s in range(0, n, step)]

    def project(self, x: np.ndarray) -> np.ndarray:
        """``P x`` for rows ``x`` ``[n, dim]`` -> float32 ``[n, bits]``."""
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise DataError(f"vectors have shape {x.shape} but the simhash planes have dim {self.dim}")
        return np.asarray((self.planes @ x.T).T, dtype=np.float32)

    def encode(self, x: np.ndarray) -> np.ndarray:
        """Structured ``[n]`` array: packed sign bits of ``P x`` and the row norms (projected a few rows at
        a time, so the float projections take at most ``UNPACK_CELLS`` numbers whatever the block size)."""
        out = np.empty(x.shape[0], dtype=self.dtype)
        for s in self._slices(x.shape[0]):
            out["code"][s] = np.packbits(self.project(x[s]) > 0, axis=1)
        out["norm"] = np.linalg.norm(x, axis=1)
        return out

    def topk(
        self, queries: np.ndarray, k: int, *, largest: bool = True, ties: str = "low"
    ) -> tuple[np.ndarray, np.ndarray]:
        q = np.asarray(queries, dtype=np.float32)
        if q.ndim != 2:
            raise DataError(f"queries must be 2-D [num_queries, dim], got shape {q.shape}")
        qp = self.project(q)
        total = qp.sum(axis=1)
        scale = np.float32(math.sqrt(math.pi / 2) / self.bits)

        def score(_: np.ndarray, block: np.ndarray) -> np.ndarray:
            dots = np.empty((qp.shape[0], len(block)), dtype=np.float32)
            for s in self._slices(len(block)):
                signs = np.unpackbits(block["code"][s], axis=1, count=self.bits).astype(np.float32)
                dots[:, s] = qp @ signs.T  # sum of P q over the set bits
            return (2.0 * dots - total[:, None]) * scale * block["norm"][None, :]

        return topk(self.blocks, qp, k, largest=largest, ties=ties, scorer=score)


def _sparse_planes(bits: int, dim: int, density: float, seed: int) -> Any:
    """A ``[bits, dim]`` sparse matrix of random signs, ``~density * dim`` per row, unit variance per entry."""
    from scipy import sparse

    rng = np.random.default_rng(seed)
    per_row = max(1, round(density * dim))
    cols = np.stack([rng.choice(dim, size=per_row, replace=False) for _ in range(bits)]) if per_row < dim else None
    if cols is None:
        cols = np.tile(np.arange(dim), (bits, 1))
    signs = rng.choice(np.array([-1.0, 1.0], dtype=np.float32), size=cols.shape) * np.float32(math.sqrt(dim / per_row))
    indptr = np.arange(0, bits * per_row + 1, per_row)
    return sparse.csr_matrix((signs.ravel(), cols.ravel(), indptr), shape=(bits, dim))


def _load_blocks(root: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    meta = json.loads((root / "meta.json").read_text())
    return [
        (
            np.load(root / f"rows-{i:05d}.npy", allow_pickle=False),
            np.load(root / f"codes-{i:05d}.npy", mmap_mode="r", allow_pickle=False),
        )
        for i in range(int(meta["blocks"]))
    ]


# ---------------------------------------------------------------------------------------------- FAISS
def _faiss() -> Any:
    try:
        import faiss
    except ImportError:
        raise ConfigError(
            "search.backend faiss_flat / faiss_ivfpq needs the faiss package: pip install 'rise-exp[faiss]' "
            "(faiss-cpu); search.backend=exact or simhash need nothing"
        ) from None
    return faiss


class FaissSearcher(Searcher):
    """A FAISS inner-product index (flat or IVF-PQ) over the rows, ids = row ids."""

    def __init__(self, index: IndexLike, cfg: SearchConfig) -> None:
        faiss = _faiss()
        t0 = time.perf_counter()
        self.backend = cfg.backend
        blocks, n, dim = _source(index)
        if cfg.backend == "faiss_flat":
            self.faiss = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
            for rows, vecs in blocks():
                self.faiss.add_with_ids(np.ascontiguousarray(vecs, dtype=np.float32), np.asarray(rows, dtype=np.int64))
            self.bytes_per_row = 4.0 * dim
        else:
            if dim % cfg.pq_m:
                raise ConfigError(f"search.pq_m must divide the vector dim {dim}, got {cfg.pq_m}")
            nlist = cfg.nlist or max(1, min(int(4 * math.sqrt(n)), n // 39))
            params = {"nlist": nlist, "pq_m": cfg.pq_m, "seed": cfg.seed, "train_rows": cfg.train_rows, "dim": dim}
            final = _cache_dir(index, "faiss_ivfpq", params)
            if final is not None and (final / "meta.json").is_file():
                self.faiss = faiss.read_index(str(final / "index.faiss"))
                log.info("faiss_ivfpq: reusing %s", final)
            else:
                self.faiss = _train_ivfpq(faiss, blocks, n, dim, nlist, cfg)
                if final is not None:
                    tmp = _tmp_dir(final)
                    faiss.write_index(self.faiss, str(tmp / "index.faiss"))
                    (tmp / "meta.json").write_text(json.dumps({**params, "rows": n}))
                    _publish(tmp, final)
            self.faiss.nprobe = cfg.nprobe
            self.bytes_per_row = float(cfg.pq_m + 8)  # PQ code + the row id in its inverted list
        self.num_rows = n
        self.build_seconds = time.perf_counter() - t0

    def topk(
        self, queries: np.ndarray, k: int, *, largest: bool = True, ties: str = "low"
    ) -> tuple[np.ndarray, np.ndarray]:
        q = np.ascontiguousarray(queries, dtype=np.float32)
        if q.ndim != 2 or q.shape[1] != self.faiss.d:
            raise DataError(f"queries of shape {q.shape} do not match the index dim {self.faiss.d}")
        k = min(int(k), self.num_rows)
        if k < 1:
            raise ConfigError(f"top-k needs k >= 1, got {k}")
        dist, ids = self.faiss.search(q if largest else -q, k)
        if (ids < 0).any():  # IVF with too few probed clusters: fewer than k candidates
            log.warning("%s found fewer than %d rows for some queries; raise search.nprobe", self.backend, k)
        scores = dist if largest else -dist
        return scores.astype(np.float32), ids.astype(np.int64)


def _train_ivfpq(faiss: Any, blocks: Callable, n: int, dim: int, nlist: int, cfg: SearchConfig) -> Any:
    rng = np.random.default_rng(cfg.seed)
    share = min(1.0, cfg.train_rows / max(n, 1))
    sample = [np.asarray(v, dtype=np.float32)[rng.random(len(r)) < share] for r, v in blocks()]
    train = np.ascontiguousarray(np.concatenate(sample))
    quantizer = faiss.IndexFlatIP(dim)
    ivf = faiss.IndexIVFPQ(quantizer, dim, nlist, cfg.pq_m, 8, faiss.METRIC_INNER_PRODUCT)
    ivf.cp.seed = cfg.seed
    ivf.pq.cp.seed = cfg.seed
    ivf.train(train)
    for rows, vecs in blocks():
        ivf.add_with_ids(np.ascontiguousarray(vecs, dtype=np.float32), np.asarray(rows, dtype=np.int64))
    return ivf


class RerankedSearcher(Searcher):
    """An approximate searcher's ``rerank`` best candidates per query, re-scored exactly with the stored vectors."""

    def __init__(self, approximate: Searcher, index: IndexLike, rerank: int) -> None:
        self.approximate, self.rerank = approximate, rerank
        self.index = index if isinstance(index, SignatureIndex | np.ndarray) else list(index)
        self.num_rows = _source(self.index)[1]
        self.backend = f"{approximate.backend}+rerank"
        self.bytes_per_row = approximate.bytes_per_row  # in memory; the stored vectors are read R rows a query
        self.build_seconds = approximate.build_seconds

    def topk(
        self, queries: np.ndarray, k: int, *, largest: bool = True, ties: str = "low"
    ) -> tuple[np.ndarray, np.ndarray]:
        if min(int(k), self.num_rows) > self.rerank:  # a pool of at most R rows is re-ranked whole
            raise ConfigError(
                f"search.rerank={self.rerank} candidates per query are fewer than the {k} results asked; "
                f"set search.rerank >= {k}"
            )
        _, candidates = self.approximate.topk(queries, self.rerank, largest=largest, ties=ties)
        return rerank(self.index, queries, candidates, k, largest=largest, ties=ties)


def open_searcher(index: IndexLike, cfg: SearchConfig | None = None) -> Searcher:
    """The searcher ``cfg.backend`` names over ``index`` (built, or loaded from the index's cache), re-ranking
    its candidates with the stored vectors when ``cfg.rerank`` is set."""
    cfg = cfg or SearchConfig()
    if cfg.backend == "exact":
        return Searcher(index)
    if not isinstance(index, SignatureIndex | np.ndarray):
        index = list(index)  # read by the backend's build and again by the re-ranking
    searcher = SimHashSearcher(index, cfg) if cfg.backend == "simhash" else FaissSearcher(index, cfg)
    return RerankedSearcher(searcher, index, cfg.rerank) if cfg.rerank else searcher
