"""Compressed and approximate search (rise_exp.retrieval.ann) against the exact streamed search."""

from __future__ import annotations

import importlib.util
import json
import sys

import numpy as np
import pytest

from rise_exp.config.run_settings import SearchConfig
from rise_exp.core.errors import ConfigError
from rise_exp.index import IndexWriter, SignatureIndex
from rise_exp.index.files import foreign_entries
from rise_exp.retrieval.ann import SEARCH_DIR, open_searcher
from rise_exp.retrieval.search import topk

HAS_FAISS = importlib.util.find_spec("faiss") is not None


def planted(n: int = 3000, dim: int = 64, queries: int = 20, seed: int = 0):
    """Unit rows in 30 clusters; each query has 10 planted near neighbours (a clear top 10)."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((30, dim))
    x = centers[rng.integers(0, 30, n)] + 0.8 * rng.standard_normal((n, dim))
    q = rng.standard_normal((queries, dim))
    for i in range(queries):
        x[i * 10 : i * 10 + 10] = q[i] + 0.3 * rng.standard_normal((10, dim))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32), (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32)


def recall(rows: np.ndarray, ref: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(rows, ref)]))


def disk_index(path, x: np.ndarray, block: int = 700) -> SignatureIndex:
    w = IndexWriter(path, dim=x.shape[1], num_rows=len(x), manifest={"method": "t"}, dtype="float32")
    for b, start in enumerate(range(0, len(x), block)):
        rows = np.arange(start, min(start + block, len(x)))
        w.write_block(b, rows, x[rows])
    return w.finalize()


def test_exact_backend_is_the_streamed_search():
    x, q = planted()
    s = open_searcher(x, SearchConfig())
    for largest in (True, False):
        got, ref = s.topk(q, 7, largest=largest), topk(x, q, 7, largest=largest)
        np.testing.assert_array_equal(got[1], ref[1])
        np.testing.assert_array_equal(got[0], ref[0])


def test_simhash_estimate_is_unbiased_for_unit_rows():
    x, q = planted(n=400, dim=48)
    exact = q @ x.T
    s = open_searcher(x, SearchConfig(backend="simhash", bits=4096, seed=3))
    scores, rows = s.topk(q, 400)
    est = np.empty_like(exact)
    np.put_along_axis(est, rows, scores, axis=1)
    slope = np.polyfit(exact.ravel(), est.ravel(), 1)[0]
    assert 0.9 < slope < 1.1, slope  # a wrong scale (bits, sqrt(pi/2), the norms) is off by far more
    assert np.corrcoef(exact.ravel(), est.ravel())[0, 1] > 0.95
    # the norm is kept: scaling a row scales its estimate
    s2 = open_searcher(x * 3.0, SearchConfig(backend="simhash", bits=4096, seed=3))
    np.testing.assert_allclose(s2.topk(q, 400)[0], 3.0 * scores, rtol=1e-4, atol=1e-5)


def test_simhash_recall_rises_with_bits_and_bottom_k_works():
    x, q = planted()
    ref = topk(x, q, 10)[1]
    few = recall(open_searcher(x, SearchConfig(backend="simhash", bits=8)).topk(q, 10)[1], ref)
    many_s = open_searcher(x, SearchConfig(backend="simhash", bits=2048))
    many = recall(many_s.topk(q, 10)[1], ref)
    assert many > 0.9 and many > few + 0.3, (few, many)
    bottom = recall(many_s.topk(q, 10, largest=False)[1], topk(x, q, 10, largest=False)[1])
    assert bottom > 0.3  # bottom rows are not planted, so only a loose check that it is the low end
    assert many_s.bytes_per_row == 2048 / 8 + 4


def test_simhash_scores_a_block_in_slices_exactly(monkeypatch):
    """Unpacking a block a few rows at a time (bounded memory) gives the scores of one whole unpack."""
    import rise_exp.retrieval.ann as ann

    x, q = planted(n=500, dim=32)
    s = open_searcher(x, SearchConfig(backend="simhash", bits=256, seed=2))
    whole = s.topk(q, 500)
    monkeypatch.setattr(ann, "UNPACK_CELLS", 7 * 256)  # 7 rows per slice: the last slice is partial
    np.testing.assert_array_equal(s.encode(x[:50])["code"], s.blocks[0][1][:50]["code"])  # encoded in slices too
    sliced = s.topk(q, 500)
    dense = [np.zeros((len(q), 500), dtype=np.float32) for _ in range(2)]
    for d, (scores, rows) in zip(dense, (whole, sliced)):
        np.put_along_axis(d, rows, scores, axis=1)
    np.testing.assert_allclose(dense[1], dense[0], rtol=1e-5, atol=1e-6)
    assert np.abs(dense[0]).min() > 0  # every row was scored


def test_simhash_codes_are_cached_in_the_index(tmp_path):
    x, q = planted(n=1500)
    index = disk_index(tmp_path / "ix", x)
    cfg = SearchConfig(backend="simhash", bits=256, seed=1)
    first = open_searcher(index, cfg)
    cached = list((tmp_path / "ix" / SEARCH_DIR).iterdir())
    assert len(cached) == 1 and (cached[0] / "meta.json").is_file()
    assert json.loads((cached[0] / "meta.json").read_text())["blocks"] == 3  # 1,500 rows in blocks of 700
    assert all(isinstance(codes, np.memmap) for _, codes in first.blocks)  # read from disk, not held in RAM
    again = open_searcher(SignatureIndex.open(tmp_path / "ix"), cfg)
    for a, b in zip(first.topk(q, 10), again.topk(q, 10)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(first.topk(q, 10)[0], open_searcher(x, cfg).topk(q, 10)[0])
    assert foreign_entries(tmp_path / "ix") == []  # the cache is part of the index directory
    open_searcher(index, SearchConfig(backend="simhash", bits=512, seed=1))
    assert len(list((tmp_path / "ix" / SEARCH_DIR).iterdir())) == 2  # other settings: another copy


def test_search_settings_are_checked():
    with pytest.raises(ConfigError, match="search.bits must be a multiple of 8"):
        SearchConfig.from_mapping({"backend": "simhash", "bits": 100})
    with pytest.raises(ConfigError, match="search.backend"):
        SearchConfig.from_mapping({"backend": "annoy"})


def test_faiss_missing_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "faiss", None)  # as if not installed: `import faiss` raises ImportError
    x, _ = planted(n=300)
    with pytest.raises(ConfigError, match=r"rise-exp\[faiss\]"):
        open_searcher(x, SearchConfig(backend="faiss_flat"))


@pytest.mark.skipif(not HAS_FAISS, reason="faiss not installed (pip install 'rise-exp[faiss]')")
def test_faiss_flat_equals_exact(tmp_path):
    x, q = planted(n=1200)
    x += np.random.default_rng(1).standard_normal(x.shape).astype(np.float32) * 1e-3  # no exact ties
    index = disk_index(tmp_path / "ix", x, block=500)
    s = open_searcher(index, SearchConfig(backend="faiss_flat"))
    for largest in (True, False):
        ref = topk(x, q, 25, largest=largest)
        got = s.topk(q, 25, largest=largest)
        np.testing.assert_array_equal(got[1], ref[1])
        np.testing.assert_allclose(got[0], ref[0], rtol=1e-5, atol=1e-5)


@pytest.mark.skipif(not HAS_FAISS, reason="faiss not installed (pip install 'rise-exp[faiss]')")
def test_faiss_ivfpq_recall_on_clustered_data(tmp_path):
    x, q = planted(n=3000, dim=64)
    ref = topk(x, q, 10)[1]
    cfg = SearchConfig(backend="faiss_ivfpq", nlist=16, pq_m=16, nprobe=4, seed=0)
    index = disk_index(tmp_path / "ix", x)
    s = open_searcher(index, cfg)
    got = recall(s.topk(q, 10)[1], ref)
    assert got > 0.8, got
    assert s.bytes_per_row < x.shape[1] * 4 / 8  # compressed
    assert len(list((tmp_path / "ix" / SEARCH_DIR).iterdir())) == 1
    np.testing.assert_array_equal(open_searcher(index, cfg).topk(q, 10)[1], s.topk(q, 10)[1])  # cached copy
    with pytest.raises(ConfigError, match="search.pq_m must divide"):
        open_searcher(x, SearchConfig(backend="faiss_ivfpq", pq_m=7))
