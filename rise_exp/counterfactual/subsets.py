"""Which rows a retraining keeps: random subsets (LDS) and removals of ranked rows (top-k removal)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def subset_size(n: int, alpha: float) -> int:
    """Rows in a subset of fraction ``alpha`` of ``n`` rows (rounded, at least 1, at most ``n - 1``)."""
    if n < 2:
        raise ValueError(f"a pool of {n} row(s) has no proper subset")
    return int(min(n - 1, max(1, round(alpha * n))))


def random_subsets(n: int, m: int, alpha: float, seed: int) -> np.ndarray:
    """``m`` random subsets of ``n`` rows as a bool mask ``[m, n]``; subset ``j`` is drawn with ``[seed, j]``.

    Every subset has :func:`subset_size` rows, so subset ``j`` does not change when ``m`` grows.
    """
    size = subset_size(n, alpha)
    masks = np.zeros((m, n), dtype=bool)
    for j in range(m):
        masks[j, np.random.default_rng([seed, j]).choice(n, size=size, replace=False)] = True
    return masks


def keep_without(n: int, removed: np.ndarray) -> np.ndarray:
    """Bool mask ``[n]`` of every row but ``removed``."""
    keep = np.ones(n, dtype=bool)
    keep[np.asarray(removed, dtype=np.int64)] = False
    return keep


def ranked_rows(values: np.ndarray, k: int, selection: str, seed: int | Sequence[int] = 0) -> np.ndarray:
    """The ``k`` rows with the highest (``top``) or lowest (``bottom``) ``values``, or ``k`` random ones.

    Ties are broken by row order (stable sort), so the result is deterministic.
    """
    n = len(values)
    if not 0 < k < n:
        raise ValueError(f"cannot remove {k} of {n} rows (k must be in [1, {n - 1}])")
    if selection == "top":
        return np.argsort(-np.asarray(values), kind="stable")[:k]
    if selection == "bottom":
        return np.argsort(np.asarray(values), kind="stable")[:k]
    if selection == "random":
        return np.sort(np.random.default_rng(seed).choice(n, size=k, replace=False))
    raise ValueError(f"unknown selection {selection!r}; allowed: top, bottom, random")
