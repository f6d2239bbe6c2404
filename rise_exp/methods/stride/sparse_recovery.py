"""Subset designs and Lasso recovery for STRIDE (Dagli et al. 2026, arXiv 2606.05165).

Each training example joins exactly ``per_example`` random subsets (subset sizes kept balanced); the
measurements of a query are ``y = M @ beta + noise`` with ``M [S, N]`` the 0/1 membership matrix, and
``beta`` is recovered per query by the Lasso
``min_b 1/(2S) ||y_c - M_c b||^2 + alpha ||b||_1`` (``_c``: column-centred, i.e. a free intercept),
scikit-learn's ``Lasso`` objective, solved by its coordinate descent.
"""

from __future__ import annotations

import numpy as np

from rise_exp.core.errors import ConfigError


def balanced_membership(n: int, n_subsets: int, per_example: int, rng: np.random.Generator) -> np.ndarray:
    """Bool ``[n_subsets, n]``: every column has exactly ``per_example`` ones; row sums differ by at most 1.

    Examples are placed one by one (random order) into the ``per_example`` least-filled subsets, ties
    broken at random, so subsets stay balanced and each example's subsets are distinct.
    """
    if per_example > n_subsets:
        raise ConfigError(f"stride.subsets_per_example ({per_example}) must not exceed stride.n_subsets ({n_subsets})")
    member = np.zeros((n_subsets, n), dtype=bool)
    counts = np.zeros(n_subsets, dtype=np.int64)
    for i in rng.permutation(n):
        keys = counts + rng.random(n_subsets)
        chosen = np.argpartition(keys, per_example - 1)[:per_example]
        member[chosen, i] = True
        counts[chosen] += 1
    return member


def lasso_alpha_max(design: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Smallest ``alpha`` giving the all-zero solution, per target column ``[Q]``."""
    mc = design - design.mean(axis=0, keepdims=True)
    yc = targets - targets.mean(axis=0, keepdims=True)
    return np.abs(mc.T @ yc).max(axis=0) / design.shape[0]


def lasso_recover(
    design: np.ndarray, targets: np.ndarray, alpha_ratio: float, *, max_iter: int = 5000, tol: float = 1e-6
) -> np.ndarray:
    """Lasso with intercept for every column ``q`` of ``targets``, ``alpha_q = alpha_ratio * alpha_max_q``.

    The Lasso is positively homogeneous (``b(c y, c alpha) = c b(y, alpha)``), so each column is scaled by
    ``1 / alpha_max_q``, all columns are solved with one penalty ``alpha_ratio`` by scikit-learn's
    coordinate descent, and the coefficients are scaled back.

    Args:
        design: ``[S, N]`` design (membership) matrix.
        targets: ``[S, Q]`` measurements.
        alpha_ratio: Penalty as a fraction of each column's ``alpha_max`` (0 = least squares limit).

    Returns:
        ``[N, Q]`` float64 coefficients (all zero for a column with no signal).
    """
    from sklearn.linear_model import Lasso

    m = np.asarray(design, dtype=np.float64)
    y = np.asarray(targets, dtype=np.float64)
    if y.ndim == 1:
        y = y[:, None]
    if alpha_ratio <= 0:
        raise ConfigError(f"stride.lasso_alpha_ratio must be > 0, got {alpha_ratio}")
    amax = lasso_alpha_max(m, y)
    live = amax > 0
    beta = np.zeros((m.shape[1], y.shape[1]))
    if live.any():
        fit = Lasso(alpha=alpha_ratio, fit_intercept=True, max_iter=max_iter, tol=tol, precompute=True)
        fit.fit(m, y[:, live] / amax[live])
        coef = fit.coef_.reshape(int(live.sum()), m.shape[1])  # [Q_live, N]
        beta[:, live] = coef.T * amax[live]
    return beta
