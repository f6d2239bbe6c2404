"""Metrics: hand-computed cases, and parity with scikit-learn on random data with ties."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from rise_exp.core.errors import ConfigError, DataError
from rise_exp.retrieval.metrics import (
    average_precision,
    chance_retrieval_metrics,
    precision_at_fraction,
    retrieval_metrics,
    roc_auc,
    top_bottom_rows,
    valuation_metrics,
)


def test_average_precision_hand_computed():
    # ranking: 1 0 1 0 -> precisions at the positives 1/1 and 2/3
    assert average_precision([1, 0, 1, 0], [4, 3, 2, 1]) == pytest.approx((1 + 2 / 3) / 2)
    assert average_precision([0, 1], [2, 1]) == pytest.approx(0.5)
    assert average_precision([1, 1, 0], [3, 2, 1]) == pytest.approx(1.0)
    # a tie between the positive and a negative counts as one threshold: precision 1/2
    assert average_precision([1, 0, 0], [1.0, 1.0, 0.0]) == pytest.approx(0.5)
    assert average_precision([0, 0], [1, 2]) == 0.0


def test_roc_auc_hand_computed():
    assert roc_auc([1, 0, 1, 0], [4, 3, 2, 1]) == pytest.approx(0.75)  # pairs: (4>3, 4>1, 2<3, 2>1)
    assert roc_auc([1, 0], [1.0, 1.0]) == pytest.approx(0.5)  # a tie is half a win
    assert roc_auc([0, 1, 1], [0.5, 0.5, 0.9]) == pytest.approx(0.75)
    assert math.isnan(roc_auc([1, 1], [0.1, 0.2]))


@pytest.mark.parametrize("seed", range(6))
def test_ap_and_auc_match_sklearn_with_ties(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 60))
    y = rng.integers(0, 2, n)
    y[0], y[1] = 0, 1
    s = rng.integers(0, 6, n).astype(float)  # coarse scores: many ties
    assert average_precision(y, s) == pytest.approx(average_precision_score(y, s), abs=1e-12)
    assert roc_auc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    s2 = rng.normal(size=n)
    assert average_precision(y, s2) == pytest.approx(average_precision_score(y, s2), abs=1e-12)
    assert roc_auc(y, s2) == pytest.approx(roc_auc_score(y, s2), abs=1e-12)


def test_top_bottom_rows_and_stable_ties():
    scores = np.array([0.0, 5.0, 5.0, 1.0, 3.0, 2.0])
    top, sel = top_bottom_rows(scores, 2)
    assert top.tolist() == [1, 2]  # tie at 5.0 keeps row order
    assert sel.tolist() == [1, 2, 3, 0]  # top 2, then the 2 lowest in rank order
    top, sel = top_bottom_rows(scores, 4)  # 2K > N: every row once
    assert sorted(sel.tolist()) == list(range(6)) and len(top) == 4
    top, sel = top_bottom_rows(scores, 10)
    assert len(top) == 6 and sorted(sel.tolist()) == list(range(6))


def test_retrieval_metrics_hand_computed():
    labels = np.array([1, 0, 1, 0, 0, 1])
    scores = np.array(
        [
            [6, 5, 4, 3, 2, 1],  # top2 = rows 0,1 (1,0); bottom2 = rows 4,5 (0,1)
            [1, 2, 3, 4, 5, 6],
        ]
    )  # top2 = rows 5,4 (1,0); bottom2 = rows 1,0 (0,1)
    m = retrieval_metrics(scores, labels, ks=(2,))
    # query 0 on rows [0,1,4,5] with scores [6,5,2,1], labels [1,0,0,1]: AP = (1 + 2/4)/2, AUC = 2/4
    # query 1 on rows [5,4,1,0] with scores [6,5,2,1], labels [1,0,0,1]: the same
    assert m["auprc@2"] == pytest.approx(0.75)
    assert m["auroc@2"] == pytest.approx(0.5)
    assert m["p@2"] == pytest.approx(0.5)
    assert m["auroc@2_skipped"] == 0 and m["n_queries"] == 2


def test_retrieval_metrics_matches_a_plain_reference():
    rng = np.random.default_rng(0)
    q, n = 7, 40
    scores = rng.normal(size=(q, n)).round(1)  # rounding creates ties
    labels = (rng.random((q, n)) < 0.3).astype(int)
    m = retrieval_metrics(scores, labels, ks=(3, 10, 25))
    for k in (3, 10, 25):
        aps, aucs, ps = [], [], []
        for i in range(q):
            order = sorted(range(n), key=lambda j: (-scores[i, j], j))
            sel = order if 2 * k >= n else order[:k] + order[-k:]
            y, s = labels[i, sel], scores[i, sel]
            aps.append(average_precision_score(y, s) if y.any() else 0.0)
            if 0 < y.sum() < len(y):
                aucs.append(roc_auc_score(y, s))
            ps.append(labels[i, order[:k]].mean())
        assert m[f"auprc@{k}"] == pytest.approx(np.mean(aps))
        assert m[f"auroc@{k}"] == pytest.approx(np.mean(aucs))
        assert m[f"p@{k}"] == pytest.approx(np.mean(ps))
        assert m[f"auroc@{k}_skipped"] == q - len(aucs)


def test_one_class_queries_are_skipped_for_auroc_only():
    labels = np.array([0, 0, 0, 0, 1])
    scores = np.array([[5, 4, 3, 2, 1.0], [1, 2, 3, 4, 5.0]])
    m = retrieval_metrics(scores, labels, ks=(1,))
    # query 0 selects rows 0 and 4: both classes; query 1 selects rows 4 and 0: both classes
    assert m["auroc@1_skipped"] == 0
    m = retrieval_metrics(np.array([[5.0, 4, 0, 0, 0]]), np.zeros(5, dtype=int), ks=(1,))
    assert m["auroc@1_skipped"] == 1 and math.isnan(m["auroc@1"]) and m["auprc@1"] == 0.0
    m = retrieval_metrics(np.array([[3.0, 2.0, 1.0]]), np.array([1, 1, 1]), ks=(1,))
    assert m["auprc@1"] == 1.0 and m["p@1"] == 1.0 and m["auroc@1_skipped"] == 1


def test_retrieval_metrics_rejects_bad_input():
    with pytest.raises(DataError, match="do not match"):
        retrieval_metrics(np.zeros((2, 3)), np.zeros(4, dtype=int))
    with pytest.raises(DataError, match="0/1"):
        retrieval_metrics(np.zeros((1, 3)), np.array([0, 2, 1]))
    with pytest.raises(DataError, match="non-finite"):
        retrieval_metrics(np.array([[0.0, np.nan]]), np.array([0, 1]))
    with pytest.raises(ConfigError, match="ks"):
        retrieval_metrics(np.zeros((1, 3)), np.array([0, 1, 1]), ks=(0,))


def test_valuation_metrics_hand_computed_and_vs_sklearn():
    labels = np.array([1, 0, 1, 0, 0, 0, 0, 0, 1, 0])
    values = np.arange(10, 0, -1).astype(float)  # row 0 best
    m = valuation_metrics(values, labels)
    assert m["p@10%"] == 1.0  # top 1 row: row 0
    assert m["p@25%"] == pytest.approx(2 / 3)  # top ceil(2.5) = 3 rows: 1, 0, 1
    assert m["auprc"] == pytest.approx(average_precision_score(labels, values))
    assert m["auroc"] == pytest.approx(roc_auc_score(labels, values))
    assert precision_at_fraction(values, labels, 1.0) == pytest.approx(0.3)
    with pytest.raises(ConfigError):
        precision_at_fraction(values, labels, 0.0)
    with pytest.raises(DataError):
        valuation_metrics(values[:3], labels)


@pytest.mark.parametrize("per_query", [False, True])
def test_ranked_metrics_equal_dense_metrics_with_ties(per_query):
    from rise_exp.retrieval.metrics import retrieval_metrics_ranked
    from rise_exp.retrieval.search import topk

    rng = np.random.default_rng(7)
    n, q = 40, 6
    pool = rng.integers(-1, 2, size=(n, 3)).astype(np.float32)  # few distinct scores: many ties
    queries = rng.integers(-1, 2, size=(q, 3)).astype(np.float32)
    queries[0] = 0.0  # one query with every score tied
    labels = rng.integers(0, 2, size=(q, n) if per_query else n)
    scores = queries @ pool.T
    ks = (1, 3, 10, 20, 25, 40, 60)  # 2K < N, 2K == N, 2K > N, K > N
    kmax = min(max(ks), n)
    top = topk(pool, queries, kmax, block_rows=9)
    bottom = topk(pool, queries, kmax, largest=False, ties="high", block_rows=9)
    dense = retrieval_metrics(scores, labels, ks=ks)
    ranked = retrieval_metrics_ranked(top, bottom, labels, n, ks)
    assert dense.keys() == ranked.keys()
    for key, value in dense.items():
        assert ranked[key] == pytest.approx(value, nan_ok=True), key
    with pytest.raises(DataError, match="top and bottom 40 rows"):
        retrieval_metrics_ranked((top[0][:, :5], top[1][:, :5]), bottom, labels, n, ks)


def test_chance_level_by_hand_and_above_the_positive_rate():
    # N = 2, one positive, K = 1: both rows are evaluated; AP is 1 when the positive ranks first, else 1/2
    chance = chance_retrieval_metrics(np.array([1, 0]), n_queries=50, ks=[1], draws=80, seed=1)
    assert chance["auprc@1"] == pytest.approx(0.75, abs=0.02) and chance["p@1"] == pytest.approx(0.5, abs=0.03)
    assert chance["auroc@1"] == pytest.approx(0.5, abs=0.03) and 0 < chance["p@1_std"] < 0.2
    every = chance_retrieval_metrics(np.ones(6, dtype=int), n_queries=3, ks=[2], draws=2)
    assert every["auprc@2"] == 1.0 and every["p@2"] == 1.0 and every["auprc@2_std"] == 0.0
    assert math.isnan(every["auroc@2"])  # one class only: AUC undefined
    labels = np.zeros(300, dtype=int)
    labels[:26] = 1  # the real Howdy subset: auPRC@K's chance is far above the positive rate, P@K's is the rate
    howdy = chance_retrieval_metrics(labels, n_queries=100, ks=[10], draws=5)
    assert howdy["auprc@10"] > 0.15 and howdy["p@10"] == pytest.approx(26 / 300, abs=0.02)
    with pytest.raises(ConfigError, match="draws >= 2"):
        chance_retrieval_metrics(labels, n_queries=1, draws=1)
