"""lightning/sharding.py: the one sharding rule; every world-th item from the rank, padded only for training."""

from __future__ import annotations

from rise_exp.lightning.sharding import distributed_barrier, rank_and_world, rank_share


def test_ranks_take_disjoint_shares_that_cover_the_items_when_predicting():
    items = list(range(7))
    shares = [rank_share(items, pad=False, rank=r, world=3) for r in range(3)]
    assert shares == [[0, 3, 6], [1, 4], [2, 5]]
    assert sorted(x for s in shares for x in s) == items  # each item written exactly once


def test_training_pads_so_every_rank_steps_the_same_number_of_times():
    shares = [rank_share(list("abcde"), pad=True, rank=r, world=3) for r in range(3)]
    assert shares == [["a", "d"], ["b", "e"], ["c", "a"]]  # the leading item repeated once
    assert rank_share([], pad=True, rank=1, world=2) == []


def test_a_single_process_takes_everything():
    assert rank_and_world() == (0, 1)  # no process group in the tests
    assert rank_share((1, 2, 3), pad=True) == [1, 2, 3]
    assert rank_share([1, 2, 3], pad=False, rank=0, world=1) == [1, 2, 3]
    distributed_barrier()  # a no-op without a process group
