"""Re-ranking an approximate backend's candidates with the stored vectors (search.rerank)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from rise_exp.config.run_settings import SearchConfig
from rise_exp.core.errors import ConfigError
from rise_exp.index import IndexWriter, SignatureIndex
from rise_exp.retrieval.ann import open_searcher
from rise_exp.retrieval.rerank import rerank
from rise_exp.retrieval.search import topk, topk_among

HAS_FAISS = importlib.util.find_spec("faiss") is not None


def fp16_index(path, x: np.ndarray, block: int) -> SignatureIndex:
    w = IndexWriter(path, dim=x.shape[1], num_rows=len(x), manifest={"method": "t"}, dtype="float16")
    for b, start in enumerate(range(0, len(x), block)):
        rows = np.arange(start, min(start + block, len(x)))
        w.write_block(b, rows, x[rows].astype(np.float16))
    return w.finalize()


def recall(rows: np.ndarray, ref: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(rows, ref)]))


def test_hand_computed_case():
    x = np.array([[1, 0], [0, 1], [2, 0], [1, 1], [3, 0], [0, 5]], dtype=np.float32)
    q = np.array([[1, 1]], dtype=np.float32)  # exact scores 1, 1, 2, 2, 3, 5
    cand = np.array([[4, 1, 3, 2, -1]])  # row 5 (the true best) is not a candidate; one empty slot
    scores, rows = rerank(x, q, cand, 3)
    np.testing.assert_array_equal(rows, [[4, 2, 3]])  # 3 ties 2 at score 2: the smaller row first
    np.testing.assert_array_equal(scores, [[3, 2, 2]])
    assert rerank(x, q, cand, 3, ties="high")[1].tolist() == [[4, 3, 2]]
    scores, rows = rerank(x, q, cand, 5, largest=False)  # bottom: 1, then 2, 3 (tie), 4, then the empty slot
    assert rows.tolist() == [[1, 2, 3, 4, -1]]
    assert scores[0, :4].tolist() == [1, 2, 2, 3] and scores[0, 4] == np.inf


@pytest.mark.parametrize("block", [37, 500])
def test_equals_exact_search_when_the_candidates_hold_its_top_k(tmp_path, block):
    """Small integers in fp16: every float32 sum is exact, ties across blocks included."""
    rng = np.random.default_rng(block)
    x = rng.integers(-3, 4, size=(500, 16)).astype(np.float32)
    x[250:260] = x[10]  # exact ties across blocks
    q = rng.integers(-2, 3, size=(9, 16)).astype(np.float32)
    index = fp16_index(tmp_path / "ix", x, block)
    for largest in (True, False):
        for ties in ("low", "high"):
            ref_scores, ref_rows = topk(index, q, 10, largest=largest, ties=ties)
            # the candidates hold the exact top 10 plus any other rows, in any order; ties at the 10th place are
            # all candidates, since which of them is kept is decided by the rule
            kth = ref_scores[:, -1:]
            scores = q @ x.T
            at_kth = np.flatnonzero((scores == kth).any(axis=0))
            sets = [rng.permutation(np.unique(np.concatenate([r, at_kth, rng.choice(500, 30)]))) for r in ref_rows]
            cand = np.full((len(q), max(map(len, sets))), -1)  # -1: no candidate in that slot
            for i, c in enumerate(sets):
                cand[i, : len(c)] = c
            got_scores, got_rows = rerank(index, q, cand, 10, largest=largest, ties=ties)
            np.testing.assert_array_equal(got_rows, ref_rows)
            np.testing.assert_array_equal(got_scores, ref_scores)


def test_topk_among_matches_topk_on_the_candidates():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 5, size=(4, 40)).astype(np.float32)
    rows = np.stack([rng.permutation(1000)[:40] for _ in range(4)])
    for largest in (True, False):
        for ties in ("low", "high"):
            got = topk_among(scores, rows, 6, largest=largest, ties=ties)
            for i in range(4):
                blocks = [(rows[i], scores[i][:, None])]  # one block, dim 1, query 1: scores = the values
                ref = topk(blocks, np.ones((1, 1), dtype=np.float32), 6, largest=largest, ties=ties)
                np.testing.assert_array_equal(got[1][i], ref[1][0])
                np.testing.assert_array_equal(got[0][i], ref[0][0])


def planted(n: int = 3000, dim: int = 64, queries: int = 20, seed: int = 0):
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((30, dim))
    x = centers[rng.integers(0, 30, n)] + 0.8 * rng.standard_normal((n, dim))
    q = rng.standard_normal((queries, dim))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32), (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32)


def coverage(candidates: np.ndarray, ref: np.ndarray) -> float:
    """Share of exact search's top k found among the candidates: what re-ranking them must recall, exactly."""
    return float(np.mean([len(set(c.tolist()) & set(t.tolist())) / len(t) for c, t in zip(candidates, ref)]))


def test_rerank_recalls_every_true_neighbour_among_simhash_candidates(tmp_path):
    x, q = planted()
    index = fp16_index(tmp_path / "ix", x, 700)
    ref = topk(index, q, 10)[1]
    plain = open_searcher(index, SearchConfig(backend="simhash", bits=32, seed=0))
    reranked = open_searcher(index, SearchConfig(backend="simhash", bits=32, seed=0, rerank=600))
    before, after = recall(plain.topk(q, 10)[1], ref), recall(reranked.topk(q, 10)[1], ref)
    assert after == coverage(plain.topk(q, 600)[1], ref)  # no true neighbour among the candidates is lost
    assert after > before + 0.4, (before, after)
    scores, rows = reranked.topk(q, 10)
    exact = (q @ x.astype(np.float16).astype(np.float32).T)[np.arange(len(q))[:, None], rows]
    np.testing.assert_allclose(scores, exact, rtol=1e-6, atol=1e-6)  # exact scores of the rows it returns
    assert reranked.backend == "simhash+rerank" and reranked.bytes_per_row == plain.bytes_per_row


@pytest.mark.skipif(not HAS_FAISS, reason="faiss not installed (pip install 'rise-exp[faiss]')")
def test_rerank_raises_ivfpq_recall(tmp_path):
    x, q = planted(n=3000, dim=64)
    index = fp16_index(tmp_path / "ix", x, 700)
    ref = topk(index, q, 10)[1]
    cfg = {"backend": "faiss_ivfpq", "nlist": 16, "pq_m": 4, "nprobe": 8, "seed": 0}
    plain = open_searcher(index, SearchConfig(**cfg))
    before = recall(plain.topk(q, 10)[1], ref)
    after = recall(open_searcher(index, SearchConfig(**cfg, rerank=200)).topk(q, 10)[1], ref)
    assert after == coverage(plain.topk(q, 200)[1], ref)
    assert before < 0.5 and after > 0.9, (before, after)


def test_bad_rerank_settings_are_refused():
    with pytest.raises(ConfigError, match=r"^search.rerank re-scores an approximate .*search.backend=exact is exact"):
        SearchConfig.from_mapping({"rerank": 100})
    with pytest.raises(ConfigError, match=r"search.rerank"):
        SearchConfig.from_mapping({"backend": "faiss_flat", "rerank": 100})
    with pytest.raises(ConfigError, match=r"search.rerank"):
        SearchConfig.from_mapping({"backend": "simhash", "rerank": -1})
    x, q = planted(n=200)
    s = open_searcher(x, SearchConfig(backend="simhash", bits=64, rerank=20))
    with pytest.raises(ConfigError, match=r"search.rerank=20 candidates per query are fewer than the 50 results"):
        s.topk(q, 50)
