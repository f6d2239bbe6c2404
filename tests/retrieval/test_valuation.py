"""Score fusion and valuation against an index, checked on hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from rise_exp.core.errors import ConfigError, DataError
from rise_exp.index import IndexWriter
from rise_exp.retrieval.valuation import fuse_scores, mean_vector, ranks, value_against_index

SCORES = np.array([[3.0, 1.0, 2.0], [0.0, 5.0, 1.0]])


def test_mean_fusion_by_hand():
    np.testing.assert_allclose(fuse_scores(SCORES, "mean"), [1.5, 3.0, 1.5])
    assert fuse_scores(SCORES).dtype == np.float32


def test_rrf_by_hand():
    # query 0 ranks rows (0, 2, 1) as 1, 2, 3; query 1 ranks rows (1, 2, 0) as 1, 2, 3
    np.testing.assert_allclose(fuse_scores(SCORES, "rrf"), [1 / 61 + 1 / 63, 1 / 63 + 1 / 61, 2 / 62], rtol=1e-6)
    np.testing.assert_allclose(fuse_scores(SCORES, "rrf", rrf_k=0), [4 / 3, 4 / 3, 1.0], rtol=1e-6)


def test_rrf_ties_share_the_best_rank():
    np.testing.assert_array_equal(ranks(np.array([[1.0, 1.0, 0.0, 2.0, 1.0]])), [[2, 2, 5, 1, 2]])
    np.testing.assert_allclose(fuse_scores(np.array([[1.0, 1.0, 0.0]]), "rrf", rrf_k=0), [1.0, 1.0, 1 / 3])


def test_mean_vector_by_hand():
    np.testing.assert_allclose(mean_vector(np.array([[3.0, 4.0], [0.0, 2.0]])), [1.5, 3.0], rtol=1e-6)
    with pytest.raises(DataError, match="NaN or inf"):
        mean_vector(np.array([[1.0, 0.0], [np.nan, 0.0]]))


def test_bad_modes_and_shapes():
    with pytest.raises(ConfigError, match="valuation mode 'max'; allowed values: mean, rrf"):
        fuse_scores(SCORES, "max")
    with pytest.raises(ConfigError, match="valuation mode"):
        value_against_index(np.eye(3), np.eye(3), "sum")
    with pytest.raises(ConfigError, match="rrf_k"):
        fuse_scores(SCORES, "rrf", rrf_k=-1)
    with pytest.raises(DataError, match="shape"):
        fuse_scores(SCORES[0])
    with pytest.raises(DataError, match="NaN"):
        fuse_scores(np.array([[np.nan, 1.0]]))


def test_value_against_index_equals_fused_scores(tmp_path):
    rng = np.random.default_rng(0)
    n, dim = 40, 6
    pool = rng.standard_normal((n, dim)).astype(np.float32)
    pool /= np.linalg.norm(pool, axis=1, keepdims=True)
    queries = rng.standard_normal((7, dim)).astype(np.float32) * rng.uniform(0.5, 3, size=(7, 1)).astype(np.float32)
    w = IndexWriter(tmp_path, dim=dim, num_rows=n, manifest={"method": "rise"}, dtype="float32")
    perm = rng.permutation(n)
    for b in range(4):
        w.write_block(b, perm[b * 10 : (b + 1) * 10], pool[perm[b * 10 : (b + 1) * 10]])
    index = w.finalize()
    # one pass against the mean query vector == the mean of the queries' score rows
    np.testing.assert_allclose(
        value_against_index(index, queries, "mean"), fuse_scores(queries @ pool.T, "mean"), atol=1e-5
    )
    ref_rrf = fuse_scores(queries @ pool.T, "rrf")
    for source in (index, pool):
        got = value_against_index(source, queries, "rrf", query_chunk=3, block_rows=8)
        np.testing.assert_allclose(got, ref_rrf, rtol=1e-6)


def test_rrf_in_small_chunks_equals_fused_scores():
    rng = np.random.default_rng(5)
    pool = rng.integers(-2, 3, size=(30, 4)).astype(np.float32)
    targets = rng.integers(-2, 3, size=(7, 4)).astype(np.float32)
    ref = fuse_scores(targets @ pool.T, "rrf")
    for max_cells in (1, 45, 10_000):  # one query at a time, a query and a half, everything at once
        got = value_against_index(pool, targets, "rrf", max_cells=max_cells, block_rows=8)
        np.testing.assert_allclose(got, ref, rtol=1e-6)
