"""The linear datamodeling score (LDS, Park et al. 2023, TRAK): do summed attributions predict retraining?

For query ``q`` and subset ``S_j`` a method predicts the subset's effect as ``sum_{i in S_j} tau(q, i)``;
the measured effect is ``HELPED[measure] * value_j(q)`` (for ``loss``: the negative loss, since a helpful
row lowers it). ``LDS(q)`` is the Spearman correlation of the two over the subsets; a method's LDS is its
mean ± std over queries, with a bootstrap interval over subsets.

The noise ceiling says how high any attribution could score: per query, the Spearman correlation over the
same subsets of the values measured after retraining with two different seeds (averaged over seed pairs),
with the same mean, std and bootstrap over subsets. A method's LDS is read against it, not against 1.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata

#: Per measure, the sign that turns a measured value into "how much the kept rows helped the query".
HELPED: dict[str, float] = {"loss": -1.0, "backdoor": 1.0, "style_loss": -1.0}


def predictions(scores: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Predicted effect of every subset on every query, ``[M, Q]``: the sum of the kept rows' scores.

    Args:
        scores: ``[Q, N]`` attribution scores (higher = more helpful).
        masks: ``[M, N]`` bool, the rows each subset keeps.
    """
    return np.asarray(masks, dtype=np.float64) @ np.asarray(scores, dtype=np.float64).T


def columnwise_spearman(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman correlation of each column of ``a`` with the same column of ``b`` (``[M, Q]`` -> ``[Q]``).

    Ties get average ranks; a column that is constant in either input gives NaN.
    """
    ra, rb = rankdata(a, axis=0), rankdata(b, axis=0)
    ra, rb = ra - ra.mean(0), rb - rb.mean(0)
    den = np.sqrt((ra**2).sum(0) * (rb**2).sum(0))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (ra * rb).sum(0) / np.where(den > 0, den, 1.0), np.nan)


def lds_per_query(scores: np.ndarray, masks: np.ndarray, values: np.ndarray, measure: str = "loss") -> np.ndarray:
    """``LDS(q)`` for every query ``[Q]`` (NaN where the measured values do not vary over the subsets).

    Args:
        scores: ``[Q, N]`` attribution scores.
        masks: ``[M, N]`` bool subsets.
        values: ``[M, Q]`` measured values after retraining on each subset (seed-averaged).
        measure: Which measurement ``values`` are (its sign is :data:`HELPED`).
    """
    return columnwise_spearman(predictions(scores, masks), HELPED[measure] * np.asarray(values, dtype=np.float64))


@dataclass(frozen=True)
class LdsResult:
    """A method's LDS: per query, their mean and std, and a bootstrap interval of the mean over subsets."""

    per_query: np.ndarray
    mean: float
    std: float
    ci_low: float
    ci_high: float
    valid_queries: int


def _summary(
    per_query: np.ndarray, pairs: list[tuple[np.ndarray, np.ndarray]], bootstrap: int, ci: float, seed: int
) -> LdsResult:
    """Mean ± sample std over queries (NaN skipped), and a percentile bootstrap interval of the mean resampling
    subsets with replacement, of ``mean over pairs of columnwise_spearman(a, b)`` (``bootstrap`` = 0: NaN)."""
    valid = per_query[~np.isnan(per_query)]
    mean = float(valid.mean()) if valid.size else float("nan")
    std = float(valid.std(ddof=1)) if valid.size > 1 else float("nan")
    low = high = float("nan")
    if bootstrap > 0 and valid.size:
        rng = np.random.default_rng(seed)
        stats = []
        for _ in range(bootstrap):
            pick = rng.integers(0, len(pairs[0][0]), size=len(pairs[0][0]))
            with np.errstate(invalid="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                sample = np.nanmean([columnwise_spearman(a[pick], b[pick]) for a, b in pairs], axis=0)
            if not np.isnan(sample).all():
                stats.append(float(np.nanmean(sample)))
        if stats:
            low, high = (float(x) for x in np.quantile(stats, [(1 - ci) / 2, (1 + ci) / 2]))
    return LdsResult(per_query, mean, std, low, high, int(valid.size))


def noise_ceiling(
    values_by_seed: Sequence[np.ndarray], *, bootstrap: int = 1000, ci: float = 0.95, seed: int = 0
) -> LdsResult:
    """The rank correlation of the measured values ``[M, Q]`` between retraining seeds on the same subsets:
    per query the mean over seed pairs of their Spearman correlation over subsets; summarised like :func:`lds`.

    Raises:
        ValueError: with fewer than two seeds.
    """
    if len(values_by_seed) < 2:
        raise ValueError("the noise ceiling needs the values of at least two retraining seeds")
    vals = [np.asarray(v, dtype=np.float64) for v in values_by_seed]
    pairs = list(itertools.combinations(vals, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a query NaN in every pair stays NaN
        per_query = np.nanmean([columnwise_spearman(a, b) for a, b in pairs], axis=0)
    return _summary(per_query, pairs, bootstrap, ci, seed)


def lds(
    scores: np.ndarray,
    masks: np.ndarray,
    values: np.ndarray,
    measure: str = "loss",
    *,
    bootstrap: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
) -> LdsResult:
    """The LDS of ``scores``: mean ± sample std over queries (NaN queries skipped) and a percentile
    bootstrap interval of the mean, resampling subsets with replacement (``bootstrap`` = 0: NaN bounds)."""
    per_query = lds_per_query(scores, masks, values, measure)
    pred, target = predictions(scores, masks), HELPED[measure] * np.asarray(values, dtype=np.float64)
    return _summary(per_query, [(pred, target)], bootstrap, ci, seed)
