"""closed_loop/selectors.py: the budget prefix in rows and tokens; ranking, bound and random selectors."""

from __future__ import annotations

import numpy as np

from rise_exp.closed_loop.selectors import prefix_within_budget, select
from rise_exp.data.records import Record


def _pool() -> list[Record]:
    return [Record(id=str(i), text=f"t{i}", label=i % 2) for i in range(10)]


def test_prefix_within_budget_rows_and_tokens():
    counts = np.array([5, 1, 1, 1, 2])  # 10 tokens
    assert prefix_within_budget([4, 3, 2, 1, 0], counts, 0.4, "rows") == [4, 3]
    assert prefix_within_budget([4, 3, 2, 1, 0], counts, 0.3, "tokens") == [4, 3]  # 2 + 1 >= 3
    assert prefix_within_budget([0, 1], counts, 0.5, "tokens") == [0]  # 5 >= 5
    assert prefix_within_budget([1, 2], counts, 1.0, "tokens") == [1, 2]  # short list: taken whole
    assert prefix_within_budget([3], counts, 0.01, "rows") == [3]  # at least one row


def test_selectors_rank_bound_and_randomise():
    pool, counts = _pool(), np.ones(10)
    values = np.arange(10, dtype=float)
    assert select("bm25", pool, counts, 0.3, "rows", 0, values).rows == (9, 8, 7)
    oracle = select("oracle", pool, counts, 0.3, "rows", 0)
    anti = select("anti_oracle", pool, counts, 0.8, "rows", 0)
    assert len(oracle.rows) == 3 and all(pool[i].label == 1 for i in oracle.rows)
    assert sorted(anti.rows) == [0, 2, 4, 6, 8]  # fewer eligible rows than the budget: all of them
    assert select("all", pool, counts, 0.1, "rows", 0).rows == tuple(range(10))
    r0, r0b, r1 = (select("random", pool, counts, 0.5, "rows", s).rows for s in (0, 0, 1))
    assert r0 == r0b and r0 != r1 and len(set(r0)) == 5
