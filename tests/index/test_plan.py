"""index/plan.py: batches grouped into blocks of whole batches, the canonical plan.json round trip, and checks that
name a plan which does not cover the pool."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rise_exp.core.errors import IndexError_
from rise_exp.index.plan import PLAN, BatchPlan, group_blocks


def test_blocks_hold_whole_batches_up_to_block_rows():
    assert group_blocks([3, 3, 3, 3], 7) == [(0, 2), (2, 4)]
    assert group_blocks([3, 4, 1], 7) == [(0, 2), (2, 3)]  # exactly block_rows fits
    assert group_blocks([9, 2, 2], 7) == [(0, 1), (1, 3)]  # a batch larger than a block is a block of its own
    assert group_blocks([2, 9], 7) == [(0, 1), (1, 2)]
    assert group_blocks([], 7) == []


def test_block_rows_follow_the_planned_batch_order():
    plan = BatchPlan.from_batches([[4, 0], [3], [1, 2]], block_rows=3, params={"batch_tokens": 64})
    assert plan.num_blocks == 2 and plan.blocks == ((0, 2), (2, 3))
    assert plan.block_batches(0) == ((4, 0), (3,))
    np.testing.assert_array_equal(plan.block_rows(0), [4, 0, 3])
    assert plan.block_rows(1).dtype == np.int64
    assert plan.params == {"batch_tokens": 64, "block_rows": 3}
    plan.check(5)


def test_plan_json_round_trips_and_its_hash_ignores_nothing_but_formatting():
    plan = BatchPlan.from_batches([[2, 0], [1]], block_rows=2, params={"batch_tokens": 8})
    again = BatchPlan.from_json(plan.to_json())
    assert again == plan and again.params == plan.params and again.to_json() == plan.to_json()
    assert json.loads(plan.to_json())["format"] == 1
    other = BatchPlan.from_batches([[0, 2], [1]], block_rows=2, params={"batch_tokens": 8})
    assert other.sha256 != plan.sha256  # another order within a batch is another plan
    s = plan.summary()
    assert (s["file"], s["sha256"], s["batches"], s["blocks"]) == (PLAN, plan.sha256, 2, 2)
    assert BatchPlan(plan.batches, plan.blocks, {"other": 1}) == plan  # params are informational


@pytest.mark.parametrize(
    "text, match",
    [
        (b"{", "Expecting"),
        (b'{"format": 2, "batches": [], "blocks": []}', "format 2, expected 1"),
        (b'{"format": 1, "blocks": []}', "batches"),
        (b'{"format": 1, "batches": [["a"]], "blocks": []}', "invalid literal"),
        (b"[1, 2]", "no attribute"),
    ],
)
def test_a_malformed_plan_file_is_named(text, match):
    with pytest.raises(IndexError_, match=f"ix/plan.json is unreadable .*{match}"):
        BatchPlan.from_json(text, where="ix/plan.json")


def test_check_names_a_plan_that_does_not_cover_the_pool():
    plan = BatchPlan.from_batches([[0, 1], [2]], block_rows=2)
    with pytest.raises(IndexError_, match=r"do not hold rows 0..3 exactly once"):
        plan.check(4)
    with pytest.raises(IndexError_, match="do not hold rows 0..2 exactly once"):
        BatchPlan.from_batches([[0, 1], [1]], block_rows=2).check(3)
    with pytest.raises(IndexError_, match="blocks cover 1 of 2 batches"):
        BatchPlan(plan.batches, ((0, 1),)).check(3)
    with pytest.raises(IndexError_, match=r"my plan: blocks do not cover the batches in order \(block at 1..2\)"):
        BatchPlan(plan.batches, ((1, 2),)).check(3, where="my plan")
