"""Subsets and removal plans: sizes, seeds, rankings, changes."""

from __future__ import annotations

import numpy as np
import pytest

from rise_exp.counterfactual.removal import change_rows, plan_removals
from rise_exp.counterfactual.subsets import keep_without, random_subsets, ranked_rows, subset_size


def test_subsets_have_the_fraction_are_seeded_and_stable_when_more_are_drawn():
    masks = random_subsets(11, 5, 0.5, seed=4)
    assert masks.shape == (5, 11) and (masks.sum(1) == subset_size(11, 0.5)).all()
    np.testing.assert_array_equal(random_subsets(11, 8, 0.5, seed=4)[:5], masks)
    assert not np.array_equal(random_subsets(11, 5, 0.5, seed=5), masks)
    assert len({m.tobytes() for m in masks}) == 5
    assert subset_size(10, 0.01) == 1 and subset_size(10, 0.99) == 9
    with pytest.raises(ValueError, match="no proper subset"):
        subset_size(1, 0.5)


def test_ranked_rows_and_keep_without():
    values = np.array([0.1, 3.0, -2.0, 3.0, 0.5])
    assert ranked_rows(values, 2, "top").tolist() == [1, 3]
    assert ranked_rows(values, 2, "bottom").tolist() == [2, 0]
    r = ranked_rows(values, 3, "random", seed=[1, 2])
    assert len(set(r.tolist())) == 3 and r.tolist() == ranked_rows(values, 3, "random", seed=[1, 2]).tolist()
    assert keep_without(5, np.array([1, 3])).tolist() == [True, False, True, False, True]
    with pytest.raises(ValueError, match="cannot remove 5 of 5"):
        ranked_rows(values, 5, "top")


def test_plan_set_scope_fuses_queries_and_query_scope_ranks_each():
    scores = {"a": np.array([[5.0, 0.0, 1.0, 2.0], [5.0, 4.0, 0.0, 0.0]])}
    plan = plan_removals(scores, [1, 2], scope="set", selections=("top", "bottom", "random"), random_draws=2)
    top = {r.k: r.rows for r in plan if r.selection == "top"}
    assert top == {1: (0,), 2: (0, 1)}  # mean over queries: [5, 2, 0.5, 1]
    assert {r.k: r.rows for r in plan if r.selection == "bottom"} == {1: (2,), 2: (2, 3)}
    randoms = [r for r in plan if r.method == "random"]
    assert len(randoms) == 4 and {r.draw for r in randoms} == {0, 1}
    per_query = plan_removals(scores, [1], scope="query", selections=("top",))
    assert [(r.query, r.rows) for r in per_query] == [(0, (0,)), (1, (0,))]
    assert per_query[0].keep(4).tolist() == [False, True, True, True]


def test_change_rows_subtract_the_full_pool_and_keep_only_the_targeted_query():
    scores = {"a": np.zeros((2, 4))}
    full = {"loss": np.array([1.0, 2.0])}
    without = {"loss": np.array([1.5, 1.0])}
    set_rem = plan_removals(scores, [1], selections=("top",))[0]
    rows = change_rows(set_rem, 0, without, full)
    assert [(r["query"], r["loss"]) for r in rows] == [(0, 0.5), (1, -1.0)]
    q_rem = plan_removals(scores, [1], scope="query", selections=("top",))[1]
    assert [(r["query"], r["loss"]) for r in change_rows(q_rem, 3, without, full)] == [(1, -1.0)]
