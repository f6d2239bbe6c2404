"""Streaming top-k search equals a full argsort; memory does not grow with the pool."""

from __future__ import annotations

import sys
import tracemalloc

import numpy as np
import pytest

from rise_exp.core.errors import ConfigError, DataError
from rise_exp.index import IndexWriter
from rise_exp.retrieval.search import all_scores, iter_blocks, topk


def _reference(scores: np.ndarray, k: int, largest: bool) -> tuple[np.ndarray, np.ndarray]:
    """Plain reference: full sort per query by (score, then smaller row id)."""
    rows = np.arange(scores.shape[1])
    order = np.stack([np.lexsort((rows, -s if largest else s)) for s in scores])[:, :k]
    return np.take_along_axis(scores, order, axis=1), order


def _tied_pool(n: int = 97, dim: int = 6, q: int = 5, seed: int = 0):
    """Small-integer vectors: float32 products are exact, and many scores tie."""
    rng = np.random.default_rng(seed)
    pool = rng.integers(-2, 3, size=(n, dim)).astype(np.float32)
    pool[10:20] = pool[3]  # whole groups of identical rows
    queries = rng.integers(-2, 3, size=(q, dim)).astype(np.float32)
    return pool, queries


@pytest.mark.parametrize("largest", [True, False])
@pytest.mark.parametrize("k", [1, 3, 10, 97])
@pytest.mark.parametrize("block_rows", [1, 7, 32, None])
def test_topk_matches_full_argsort_with_ties(k, block_rows, largest):
    pool, queries = _tied_pool()
    scores, rows = topk(pool, queries, k, largest=largest, block_rows=block_rows)
    ref_scores, ref_rows = _reference(queries @ pool.T, k, largest)
    assert scores.dtype == np.float32 and rows.dtype == np.int64 and rows.shape == (5, k)
    np.testing.assert_array_equal(rows, ref_rows)
    np.testing.assert_array_equal(scores, ref_scores)


@pytest.mark.parametrize("largest", [True, False])
@pytest.mark.parametrize("k", [1, 10])
def test_topk_without_ties_takes_the_partition_path_and_matches_argsort(k, largest, monkeypatch):
    import rise_exp.retrieval.search as search

    rng = np.random.default_rng(1)
    pool, queries = rng.standard_normal((300, 16)).astype(np.float32), rng.standard_normal((4, 16)).astype(np.float32)
    full_key_blocks = []
    real_keys = search._keys
    monkeypatch.setattr(search, "_keys", lambda *a: full_key_blocks.append(1) or real_keys(*a))
    scores, rows = topk(pool, queries, k, largest=largest, block_rows=64)
    ref_scores, ref_rows = _reference(queries @ pool.T, k, largest)
    np.testing.assert_array_equal(rows, ref_rows)
    np.testing.assert_array_equal(scores, ref_scores)
    assert not full_key_blocks  # continuous scores never tie: no block needed keys for every entry
    pool[40] = pool[41]  # now a tie at the top: that block falls back to full keys, still exact
    q = pool[41:42] * 3
    _, rows = topk(pool, q, 1, largest=True, block_rows=64)
    assert rows.tolist() == [[40]] and full_key_blocks


def test_ties_are_present_in_the_test_data():
    pool, queries = _tied_pool()
    s = queries @ pool.T
    top = np.sort(s, axis=1)[:, ::-1][:, :10]
    assert (np.diff(top, axis=1) == 0).any()


@pytest.mark.parametrize("largest", [True, False])
def test_topk_over_shuffled_disk_blocks(tmp_path, largest):
    rng = np.random.default_rng(3)
    n, dim = 61, 16
    pool = rng.standard_normal((n, dim)).astype(np.float16)
    queries = rng.standard_normal((4, dim)).astype(np.float32)
    w = IndexWriter(tmp_path, dim=dim, num_rows=n, manifest={"method": "x"})
    perm = rng.permutation(n)
    for b, start in enumerate(range(0, n, 9)):
        w.write_block(b, perm[start : start + 9], pool[perm[start : start + 9]])
    index = w.finalize()
    full = queries @ pool.astype(np.float32).T
    ref_scores, ref_rows = _reference(full, 8, largest)
    for block_rows in (None, 4):
        scores, rows = topk(index, queries, 8, largest=largest, block_rows=block_rows)
        np.testing.assert_array_equal(rows, ref_rows)
        np.testing.assert_allclose(scores, ref_scores, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(all_scores(index, queries), full, rtol=1e-5, atol=1e-5)
    blocks = list(index.iter_blocks())
    np.testing.assert_array_equal(topk(blocks, queries, 8, largest=largest)[1], ref_rows)
    np.testing.assert_allclose(all_scores(blocks, queries), full, rtol=1e-5, atol=1e-5)


def test_signed_zero_and_negative_scores_order():
    pool = np.array([[0.0], [-0.0], [-1.0], [2.0], [-3.5], [0.0]], dtype=np.float32)
    scores, rows = topk(pool, np.array([[1.0], [-1.0]], dtype=np.float32), 6)
    np.testing.assert_array_equal(rows, [[3, 0, 1, 5, 2, 4], [4, 2, 0, 1, 5, 3]])
    np.testing.assert_array_equal(scores[0], [2.0, 0.0, 0.0, 0.0, -1.0, -3.5])
    assert topk(pool, np.array([[1.0]], dtype=np.float32), 50)[1].shape == (1, 6)  # k clamps to N


def test_memory_independent_of_pool_size():
    rng = np.random.default_rng(0)
    queries = rng.standard_normal((4, 32)).astype(np.float32)

    def peak(n: int) -> int:
        def blocks():  # generated lazily, as memmapped blocks would be
            for start in range(0, n, 256):
                rows = np.arange(start, min(start + 256, n))
                yield rows, np.random.default_rng(start).standard_normal((len(rows), 32)).astype(np.float16)

        tracemalloc.start()
        topk(blocks(), queries, 5, block_rows=64)
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return top

    small, large = peak(2_000), peak(40_000)
    assert large < 1.5 * small + 50_000, (small, large)
    assert large < 40_000 * 32 * 2 / 4  # far below even the fp16 pool size


def test_all_scores_in_row_order():
    pool, queries = _tied_pool()
    blocks = [(rows[::-1].copy(), pool[rows[::-1]]) for rows in np.array_split(np.arange(97), 4)]
    np.testing.assert_array_equal(all_scores(blocks, queries), queries @ pool.T)
    np.testing.assert_array_equal(all_scores(pool, queries, block_rows=10), queries @ pool.T)


def test_iter_blocks_splits_to_block_rows():
    pool, _ = _tied_pool()
    sizes = [len(r) for r, _ in iter_blocks(pool, 40)]
    assert sizes == [40, 40, 17]


def test_bad_input_errors():
    pool, queries = _tied_pool()
    with pytest.raises(ConfigError, match="k >= 1"):
        topk(pool, queries, 0)
    with pytest.raises(ConfigError, match="allowed values: faiss, numpy"):
        topk(pool, queries, 3, backend="annoy")
    with pytest.raises(DataError, match="dim 4 but the index has dim 6"):
        topk(pool, queries[:, :4], 3)
    with pytest.raises(DataError, match="2-D"):
        topk(pool, queries[0], 3)
    with pytest.raises(ConfigError, match="block_rows"):
        topk(pool, queries, 3, block_rows=0)


def test_faiss_backend_missing_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "faiss", None)  # as if not installed: `import faiss` raises ImportError
    pool, queries = _tied_pool()
    with pytest.raises(ConfigError, match="needs the faiss package"):
        topk(pool, queries, 3, backend="faiss")


@pytest.mark.skipif(__import__("importlib").util.find_spec("faiss") is None, reason="faiss not installed")
def test_faiss_backend_matches_numpy():
    rng = np.random.default_rng(1)
    pool = rng.standard_normal((50, 8)).astype(np.float32)
    queries = rng.standard_normal((3, 8)).astype(np.float32)
    for largest in (True, False):
        ref = topk(pool, queries, 5, largest=largest, block_rows=16)
        got = topk(pool, queries, 5, largest=largest, block_rows=16, backend="faiss")
        np.testing.assert_array_equal(got[1], ref[1])
        np.testing.assert_allclose(got[0], ref[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("largest", [True, False])
@pytest.mark.parametrize("block_rows", [1, 7, None])
def test_ties_high_prefers_larger_rows(block_rows, largest):
    pool, queries = _tied_pool()
    scores, rows = topk(pool, queries, 10, largest=largest, block_rows=block_rows, ties="high")
    full = queries @ pool.T
    ids = np.arange(full.shape[1])
    ref = np.stack([np.lexsort((-ids, -s if largest else s)) for s in full])[:, :10]
    np.testing.assert_array_equal(rows, ref)
    np.testing.assert_array_equal(scores, np.take_along_axis(full, ref, axis=1))


def test_bottom_with_high_ties_is_the_tail_of_a_stable_descending_sort():
    pool, queries = _tied_pool()
    full = queries @ pool.T
    tail = np.argsort(-full, axis=1, kind="stable")[:, ::-1][:, :12]
    np.testing.assert_array_equal(topk(pool, queries, 12, largest=False, block_rows=5, ties="high")[1], tail)
    with pytest.raises(ConfigError, match="search ties"):
        topk(pool, queries, 3, ties="middle")
