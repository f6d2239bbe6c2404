"""The LDS noise ceiling: the seed-to-seed rank correlation of the measurements, on hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from rise_exp.counterfactual.lds import lds, noise_ceiling

# [M = 4 subsets, Q = 2 queries]; query 0: seed b swaps the last two subsets (Spearman 1 - 6 * 2 / 60 = 0.8),
# query 1: seed b reverses the order (Spearman -1)
A = np.array([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0], [4.0, 4.0]])
B = np.array([[1.0, 4.0], [2.0, 3.0], [4.0, 2.0], [3.0, 1.0]])


def test_two_seeds_by_hand():
    res = noise_ceiling([A, B], bootstrap=0)
    np.testing.assert_allclose(res.per_query, [0.8, -1.0])
    assert res.mean == pytest.approx(-0.1)
    assert res.std == pytest.approx(np.sqrt(0.9**2 + 0.9**2))  # sample std of {0.8, -1}
    assert np.isnan(res.ci_low) and res.valid_queries == 2


def test_three_seeds_average_the_three_pairs():
    # query 0: (A, B) 0.8, (A, A) 1, (B, A) 0.8; query 1: -1, 1, -1
    res = noise_ceiling([A, B, A], bootstrap=0)
    np.testing.assert_allclose(res.per_query, [(0.8 + 1.0 + 0.8) / 3, -1.0 / 3])


def test_identical_seeds_reach_one_and_a_constant_query_is_skipped():
    flat = A.copy()
    flat[:, 1] = 5.0
    res = noise_ceiling([flat, flat], bootstrap=20)
    assert res.per_query[0] == pytest.approx(1.0) and np.isnan(res.per_query[1])
    assert res.mean == pytest.approx(1.0) and res.valid_queries == 1
    assert res.ci_low == pytest.approx(1.0) and res.ci_high == pytest.approx(1.0)


def test_a_method_that_predicts_one_seed_perfectly_scores_the_ceiling_against_the_other():
    """Scores that reproduce seed A's 'helped' ordering exactly have LDS = 1 against A and the ceiling
    against B (loss measure: helped = -value, so the predictions are minus A's values)."""
    masks = np.eye(4, dtype=bool)  # subset j keeps row j only: prediction of subset j = score of row j
    scores = -A.T  # [Q, N]
    assert lds(scores, masks, A, "loss", bootstrap=0).mean == pytest.approx(1.0)
    against_b = lds(scores, masks, B, "loss", bootstrap=0)
    np.testing.assert_allclose(against_b.per_query, noise_ceiling([A, B], bootstrap=0).per_query)


def test_one_seed_has_no_ceiling():
    with pytest.raises(ValueError, match="at least two retraining seeds"):
        noise_ceiling([A])
