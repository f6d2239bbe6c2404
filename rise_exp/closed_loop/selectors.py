"""Data selectors of the closed loop: which candidate rows go into continued pretraining.

A selector turns the candidate pool into an ordered list of *eligible* rows; the selection is the
shortest prefix of that list that fills the budget (a fraction of the pool's rows or tokens). Eligible
lists shorter than the budget are taken whole (the packer then cycles through them).

- a method name (``rise``, ``bm25``, ...): candidates ranked by their value against the targets.
- ``random``: a seeded random order of the whole pool.
- ``all``: the whole pool, regardless of the budget (training samples the token budget from it).
- ``oracle`` / ``anti_oracle``: only label-1 (high quality) / label-0 (junk) rows, in seeded random order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rise_exp.config.stages import BUILTIN_SELECTORS
from rise_exp.core.errors import DataError
from rise_exp.data.records import Record
from rise_exp.data.task_builders import record_labels

_SEED_SALT = {"random": 1, "oracle": 2, "anti_oracle": 3}


@dataclass(frozen=True)
class Selection:
    """The rows one selector picked under one budget and seed.

    Attributes:
        selector: Selector name.
        budget: Budget fraction in (0, 1].
        seed: Seed of the random selectors (and of training).
        rows: Candidate indices, in selection order.
    """

    selector: str
    budget: float
    seed: int
    rows: tuple[int, ...]


def prefix_within_budget(order: Sequence[int], token_counts: np.ndarray, budget: float, unit: str) -> list[int]:
    """The shortest prefix of ``order`` that fills ``budget`` of the pool (rows or tokens).

    Rows: ``max(1, round(budget * N))`` rows. Tokens: rows are added until their token count reaches
    ``budget * total tokens``. An ``order`` shorter than the budget is returned whole.
    """
    n = len(token_counts)
    if unit == "rows":
        k = max(1, int(round(budget * n)))
        return [int(i) for i in order[:k]]
    target = budget * float(np.sum(token_counts))
    out, total = [], 0.0
    for i in order:
        if total >= target:
            break
        out.append(int(i))
        total += float(token_counts[i])
    return out


def builtin_order(selector: str, candidates: Sequence[Record], seed: int) -> list[int]:
    """The eligible rows of a built-in selector, in selection order."""
    n = len(candidates)
    if selector == "all":
        return list(range(n))
    rng = np.random.default_rng([int(seed), _SEED_SALT[selector]])
    perm = rng.permutation(n)
    if selector == "random":
        return [int(i) for i in perm]
    want = 1 if selector == "oracle" else 0
    labels = record_labels(candidates, f"selector {selector!r} (needs a 0/1 label on every candidate)")
    rows = [int(i) for i in perm if labels[i] == want]
    if not rows:
        raise DataError(f"selector {selector!r}: the candidate pool has no row with label {want}")
    return rows


def value_order(values: np.ndarray) -> list[int]:
    """Candidates by decreasing value (ties keep pool order)."""
    return [int(i) for i in np.argsort(-np.asarray(values, dtype=np.float64), kind="stable")]


def select(
    selector: str,
    candidates: Sequence[Record],
    token_counts: np.ndarray,
    budget: float,
    unit: str,
    seed: int,
    values: np.ndarray | None = None,
) -> Selection:
    """Apply one selector under one budget.

    Args:
        selector: A built-in selector or a method name (then ``values`` is required).
        candidates: The candidate pool.
        token_counts: Tokens of every candidate (for ``unit="tokens"``).
        budget: Fraction in (0, 1].
        unit: ``rows`` or ``tokens``.
        seed: Seed of the random orders.
        values: Method values of every candidate (higher = better).
    """
    if selector in BUILTIN_SELECTORS:
        order = builtin_order(selector, candidates, seed)
        rows = order if selector == "all" else prefix_within_budget(order, token_counts, budget, unit)
    else:
        if values is None or len(values) != len(candidates):
            raise ValueError(f"selector {selector!r} needs one value per candidate")
        rows = prefix_within_budget(value_order(values), token_counts, budget, unit)
    return Selection(selector=selector, budget=float(budget), seed=int(seed), rows=tuple(rows))
