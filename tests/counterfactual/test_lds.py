"""LDS on a learner that is (nearly) linear in its data: the oracle scores ~1, random ~0, the sign is tested."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr

from rise_exp.counterfactual.lds import HELPED, columnwise_spearman, lds, lds_per_query, predictions
from rise_exp.counterfactual.retrain import measure_masks
from rise_exp.counterfactual.subsets import keep_without, random_subsets

N, D, Q, M = 40, 5, 30, 60
RIDGE = 50.0  # strong ridge: the fit is close to linear in which rows are kept


@pytest.fixture(scope="module")
def learner():
    """Ridge regression retrained on kept rows; each query's measured value is its squared error."""
    rng = np.random.default_rng(0)
    x, xq = rng.standard_normal((N, D)), rng.standard_normal((Q, D))
    w_true = rng.standard_normal(D)
    y, yq = x @ w_true + 0.3 * rng.standard_normal(N), xq @ w_true

    def losses(keep: np.ndarray) -> np.ndarray:
        xs, ys = x[keep], y[keep]
        w = np.linalg.solve(xs.T @ xs + RIDGE * np.eye(D), xs.T @ ys)
        return (xq @ w - yq) ** 2

    full = losses(np.ones(N, dtype=bool))
    # the oracle: measured leave-one-out effects, "higher = more helpful" = how much the loss rises without the row
    oracle = np.stack([losses(keep_without(N, [i])) - full for i in range(N)], axis=1)
    masks = random_subsets(N, M, 0.5, seed=3)
    values = measure_masks(masks, lambda keep, desc: {"loss": losses(keep)})["loss"]
    return {"oracle": oracle, "masks": masks, "values": values}


def test_oracle_attribution_has_lds_near_one_and_its_negation_near_minus_one(learner):
    res = lds(learner["oracle"], learner["masks"], learner["values"], "loss", bootstrap=200)
    assert res.mean > 0.9 and res.valid_queries == Q
    assert res.ci_low <= res.mean <= res.ci_high and res.ci_low > 0.8
    flipped = lds(-learner["oracle"], learner["masks"], learner["values"], "loss", bootstrap=0)
    assert flipped.mean < -0.9 and np.isnan(flipped.ci_low)


def test_random_scores_have_lds_near_zero(learner):
    noise = np.random.default_rng(7).standard_normal((Q, N))
    res = lds(noise, learner["masks"], learner["values"], "loss", bootstrap=200)
    assert abs(res.mean) < 0.15
    assert res.ci_low < 0 < res.ci_high


def test_sign_convention_higher_score_means_lower_loss():
    """A row whose presence lowers the loss has a positive effect: sum of scores vs -loss."""
    masks = np.array([[1, 0], [0, 1], [1, 1]], dtype=bool)
    scores = np.array([[2.0, 1.0]])  # row 0 helps most
    loss = np.array([[1.0], [2.0], [0.5]])  # keeping row 0 gives lower loss than keeping row 1
    assert HELPED["loss"] == -1.0
    assert lds_per_query(scores, masks, loss, "loss")[0] == pytest.approx(1.0)
    assert lds_per_query(scores, masks, loss, "backdoor")[0] == pytest.approx(-1.0)
    np.testing.assert_allclose(predictions(scores, masks), [[2.0], [1.0], [3.0]])


def test_columnwise_spearman_equals_scipy_and_constant_columns_are_nan():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((12, 4)), rng.standard_normal((12, 4))
    a[:, 1] = np.round(a[:, 1])  # ties
    got = columnwise_spearman(a, b)
    for q in range(4):
        assert got[q] == pytest.approx(spearmanr(a[:, q], b[:, q]).statistic)
    b[:, 2] = 1.0
    got = columnwise_spearman(a, b)
    assert np.isnan(got[2]) and not np.isnan(got[[0, 1, 3]]).any()
    res = lds(np.eye(4, 12), np.ones((12, 12), dtype=bool) ^ np.eye(12, dtype=bool), b, bootstrap=20)
    assert res.valid_queries == 3 and res.per_query.shape == (4,)
