"""The exact streamed search over float16 index blocks equals a plain float32 product and full sort,
ties included, whatever the block and conversion sizes."""

from __future__ import annotations

import numpy as np
import pytest

from rise_exp.index import IndexWriter, SignatureIndex
from rise_exp.retrieval.search import BlockScorer, all_scores, topk


def _plain(pool: np.ndarray, queries: np.ndarray, k: int, largest: bool) -> tuple[np.ndarray, np.ndarray]:
    """A float32 product of the whole pool, then a stable full sort (ties: smaller row id first)."""
    scores = queries @ pool.astype(np.float32).T
    order = np.argsort(-scores if largest else scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, order, axis=1), order


def _fp16_index(tmp_path, pool: np.ndarray, block: int) -> SignatureIndex:
    w = IndexWriter(tmp_path / "ix", dim=pool.shape[1], num_rows=len(pool), manifest={"method": "t"}, dtype="float16")
    for b, start in enumerate(range(0, len(pool), block)):
        w.write_block(b, np.arange(start, min(start + block, len(pool))), pool[start : start + block])
    w.finalize()
    return SignatureIndex.open(tmp_path / "ix")


@pytest.mark.parametrize("largest", [True, False])
def test_fp16_index_topk_equals_the_plain_product_and_sort(tmp_path, largest) -> None:
    # small integers: every float32 sum is exact whatever the BLAS blocking, so rows and scores must be
    # equal bit for bit, and most scores tie (the smaller row id must win, across block boundaries too)
    rng = np.random.default_rng(0)
    pool = rng.integers(-3, 4, size=(1500, 48)).astype(np.float16)
    pool[700:710] = pool[5]
    queries = rng.integers(-3, 4, size=(7, 48)).astype(np.float32)
    queries[3] = pool[5]
    index = _fp16_index(tmp_path, pool, block=400)
    ref_scores, ref_rows = _plain(pool, queries, 20, largest)
    for block_rows in (None, 128, 333):
        scores, rows = topk(index, queries, 20, largest=largest, block_rows=block_rows)
        np.testing.assert_array_equal(rows, ref_rows)
        np.testing.assert_array_equal(scores, ref_scores)
    if largest:
        assert list(topk(index, queries[3:4], 11)[1][0]) == [5, *range(700, 710)]


def test_continuous_scores_agree_with_the_plain_product(tmp_path) -> None:
    rng = np.random.default_rng(3)
    pool = rng.standard_normal((2000, 64)).astype(np.float16)
    queries = rng.standard_normal((5, 64)).astype(np.float32)
    ref_scores, ref_rows = _plain(pool, queries, 50, True)
    scores, rows = topk(_fp16_index(tmp_path, pool, block=512), queries, 50, block_rows=300)
    np.testing.assert_array_equal(rows, ref_rows)  # no near-ties in these scores: BLAS rounding cannot reorder
    np.testing.assert_allclose(scores, ref_scores, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("cast_rows", [1, 7, 256, 5000])
def test_block_scorer_equals_the_plain_product_for_any_conversion_size(cast_rows) -> None:
    rng = np.random.default_rng(1)
    pool16 = rng.integers(-3, 4, size=(600, 40)).astype(np.float16)  # exact products
    q = rng.integers(-3, 4, size=(5, 40)).astype(np.float32)
    product = BlockScorer(q, cast_rows=cast_rows)
    for part in (pool16, pool16[100:137], pool16.astype(np.float32), pool16[:3]):
        np.testing.assert_array_equal(product(part), q @ part.astype(np.float32).T)


def test_all_scores_of_an_fp16_index(tmp_path) -> None:
    rng = np.random.default_rng(2)
    pool = rng.standard_normal((300, 16)).astype(np.float16)
    q = rng.standard_normal((3, 16)).astype(np.float32)
    np.testing.assert_array_equal(all_scores(_fp16_index(tmp_path, pool, 64), q), q @ pool.astype(np.float32).T)
