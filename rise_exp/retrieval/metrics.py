"""Attribution and valuation metrics, in plain NumPy.

Retrospective protocol (RISE, arXiv 2604.16197, following RapidIn, Lin et al. 2024): for each query,
rank every training row by score, keep the top-K and the bottom-K rows, and compute on those 2K rows

- ``auprc@K``: average precision of the scores against the labels,
- ``auroc@K``: ROC AUC of the scores against the labels,
- ``p@K``: the fraction of positives among the top K,

then average over queries.

Conventions (explicit, and tested):

- Ranking is by descending score; ties keep row order (a stable sort), so on equal scores the
  lower row index ranks higher. AP and AUC themselves treat tied scores as one threshold, exactly
  as scikit-learn does.
- When ``2K >= N`` the top and bottom sets overlap, so every row is used once (the whole pool).
  ``p@K`` then uses the top ``min(K, N)`` rows.
- ``average_precision`` of a set without positives is 0.0 (nothing relevant was ranked; scikit-learn
  warns and returns 0 too). A query contributes to ``auprc@K`` either way.
- Chance is not the positive rate for ``auprc@K``: AP is computed on the 2K selected rows, and a random
  ranking's AP there is well above the rate (Howdy, 26 positives in 300 rows: about 0.19 at K = 10 against
  a rate of 0.087); :func:`chance_retrieval_metrics` gives the level for any labels. ``p@K``'s chance is
  the rate.
- ROC AUC is undefined when the 2K rows hold one class only. Such a query is skipped for
  ``auroc@K`` only, and ``auroc@K_skipped`` counts them; ``auroc@K`` is NaN if every query was skipped.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence

import numpy as np

from rise_exp.core.errors import ConfigError, DataError

DEFAULT_KS: tuple[int, ...] = (5, 10, 50)


def _as_binary(labels: np.ndarray, what: str) -> np.ndarray:
    arr = np.asarray(labels)
    if arr.size and not np.isin(arr, (0, 1)).all():
        bad = np.unique(arr[~np.isin(arr, (0, 1))])[:5]
        raise DataError(f"{what} must be 0/1; found values {bad.tolist()}")
    return arr.astype(bool)


def _as_finite(scores: np.ndarray, what: str) -> np.ndarray:
    arr = np.asarray(scores, dtype=np.float64)
    if not np.isfinite(arr).all():
        raise DataError(f"{what} contain {int((~np.isfinite(arr)).sum())} non-finite values (NaN or inf)")
    return arr


def _check_1d(y_true: np.ndarray, y_score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = _as_binary(y_true, "labels")
    s = _as_finite(y_score, "scores")
    if y.ndim != 1 or s.shape != y.shape:
        raise DataError(f"labels and scores must be 1-D of equal length; got shapes {y.shape} and {s.shape}")
    return y, s


def average_precision(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """Average precision, as ``sklearn.metrics.average_precision_score`` defines it.

    ``AP = sum_n (R_n - R_{n-1}) P_n`` over the distinct score thresholds, highest first, with
    ``P_n``/``R_n`` the precision/recall of the rows scoring at least threshold ``n``.

    Args:
        y_true: 0/1 labels, ``[n]``.
        y_score: Scores, ``[n]``; higher means more likely positive.

    Returns:
        AP in [0, 1]; 0.0 when there is no positive.
    """
    y, s = _check_1d(y_true, y_score)
    n_pos = int(y.sum())
    if n_pos == 0:
        return 0.0
    order = np.argsort(-s, kind="stable")
    s_sorted, y_sorted = s[order], y[order]
    # the last position of every run of tied scores is one threshold
    ends = np.append(np.flatnonzero(s_sorted[1:] != s_sorted[:-1]), s_sorted.size - 1)
    tp = np.cumsum(y_sorted)[ends]
    precision = tp / (ends + 1)
    recall = tp / n_pos
    recall_gain = np.diff(np.concatenate(([0.0], recall)))
    return float(np.sum(recall_gain * precision))


def _midranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks of ``x`` ascending, tied values sharing their average rank."""
    order = np.argsort(x, kind="stable")
    xs = x[order]
    starts = np.concatenate(([0], np.flatnonzero(xs[1:] != xs[:-1]) + 1))
    stops = np.append(starts[1:], xs.size)
    avg = (starts + stops + 1) / 2.0  # mean of 1-based ranks starts+1 .. stops
    ranks = np.empty(x.size, dtype=np.float64)
    ranks[order] = np.repeat(avg, stops - starts)
    return ranks


def roc_auc(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """ROC AUC (Mann-Whitney U / (n_pos n_neg)), a tied positive-negative pair counting one half.

    Equals ``sklearn.metrics.roc_auc_score``.

    Returns:
        AUC in [0, 1]; NaN when ``y_true`` holds one class only (AUC undefined).
    """
    y, s = _check_1d(y_true, y_score)
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    ranks = _midranks(s)
    u = ranks[y].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def rank_rows(scores: np.ndarray) -> np.ndarray:
    """Row indices from highest to lowest score; ties keep row order."""
    return np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")


def top_bottom_rows(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The top-K rows and the protocol's evaluation set (top K plus bottom K, or all rows if 2K >= N).

    Returns:
        ``(top, selected)``: the ``min(k, N)`` best rows in rank order, and the rows AP/AUC are computed on.
    """
    order = rank_rows(scores)
    n = order.size
    top = order[: min(k, n)]
    selected = order if 2 * k >= n else np.concatenate((order[:k], order[n - k :]))
    return top, selected


def _check_ks(ks: Sequence[int]) -> tuple[int, ...]:
    out = tuple(ks)
    if not out or any(isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1 for k in out):
        raise ConfigError(f"metric ks must be a non-empty list of positive integers; got {list(out)!r}")
    return tuple(int(k) for k in out)


def retrieval_metrics(scores: np.ndarray, labels: np.ndarray, ks: Sequence[int] = DEFAULT_KS) -> dict[str, float | int]:
    """The retrospective top-K / bottom-K protocol averaged over queries (see the module docstring).

    Args:
        scores: Attribution scores ``[Q, N]`` (or ``[N]`` for one query); higher = more influential.
        labels: 0/1 relevance, ``[N]`` shared by all queries or ``[Q, N]`` per query.
        ks: The K values.

    Returns:
        ``{"auprc@K", "auroc@K", "p@K", "auroc@K_skipped"}`` for each K, plus ``"n_queries"``.

    Raises:
        DataError: on mismatched shapes, non-binary labels or non-finite scores.
        ConfigError: if a K is not a positive integer.
    """
    ks = _check_ks(ks)
    s = _as_finite(scores, "scores")
    if s.ndim == 1:
        s = s[None, :]
    if s.ndim != 2 or s.shape[1] == 0:
        raise DataError(f"scores must be [num_queries, num_train] with num_train > 0; got shape {s.shape}")
    y = _as_binary(labels, "labels")
    if y.ndim == 1 and y.shape[0] == s.shape[1]:
        y = np.broadcast_to(y, s.shape)
    if y.shape != s.shape:
        raise DataError(f"labels of shape {tuple(np.shape(labels))} do not match scores of shape {s.shape}")

    def evaluation_sets(k: int) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        for q in range(s.shape[0]):
            top, sel = top_bottom_rows(s[q], k)
            yield y[q, top], y[q, sel], s[q, sel]

    out: dict[str, float | int] = {"n_queries": int(s.shape[0])}
    for k in ks:
        out.update(_protocol_at(k, evaluation_sets(k)))
    return out


def _protocol_at(k: int, queries: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> dict[str, float | int]:
    """The protocol's numbers at ``k``, averaged over queries, from each query's labels of its top K rows and the
    labels and scores of its evaluation set (top K and bottom K rows)."""
    aps, aucs, precs = [], [], []
    for top_labels, labels, scores in queries:
        precs.append(float(top_labels.mean()))
        aps.append(average_precision(labels, scores))
        auc = roc_auc(labels, scores)
        if not math.isnan(auc):
            aucs.append(auc)
    return {
        f"auprc@{k}": float(np.mean(aps)),
        f"auroc@{k}": float(np.mean(aucs)) if aucs else math.nan,
        f"p@{k}": float(np.mean(precs)),
        f"auroc@{k}_skipped": len(precs) - len(aucs),
    }


def chance_retrieval_metrics(
    labels: np.ndarray, n_queries: int, ks: Sequence[int] = DEFAULT_KS, *, draws: int = 20, seed: int = 0
) -> dict[str, float]:
    """The chance level of :func:`retrieval_metrics` for these labels: its mean over ``draws`` sets of
    ``n_queries`` random rankings (i.i.d. normal scores; ``labels`` ``[N]``, shared by the queries).

    Returns ``{"auprc@K", "auroc@K", "p@K"}`` means and ``"<metric>_std"``, the std over draws of a draw's
    query-averaged value (how far one run of ``n_queries`` random queries strays from chance).
    """
    y = _as_binary(labels, "labels")
    if y.ndim != 1 or y.size == 0 or n_queries < 1 or draws < 2:
        raise ConfigError("chance_retrieval_metrics needs [N] labels, n_queries >= 1 and draws >= 2")
    rng = np.random.default_rng(seed)
    runs = [retrieval_metrics(rng.standard_normal((n_queries, y.size)), y, ks) for _ in range(draws)]
    out: dict[str, float] = {}
    for k in _check_ks(ks):
        for name in (f"auprc@{k}", f"auroc@{k}", f"p@{k}"):
            values = np.array([r[name] for r in runs], dtype=np.float64)
            values = values[~np.isnan(values)]  # auroc@K: NaN when every query saw one class only
            out[name] = float(values.mean()) if values.size else math.nan
            out[f"{name}_std"] = float(values.std(ddof=1)) if values.size > 1 else math.nan
    return out


def precision_at_fraction(values: np.ndarray, labels: np.ndarray, fraction: float) -> float:
    """Fraction of positives among the top ``ceil(fraction * N)`` rows (at least one row)."""
    if not 0.0 < fraction <= 1.0:
        raise ConfigError(f"precision fraction must be in (0, 1]; got {fraction!r}")
    y, v = _check_1d(labels, values)
    k = max(1, math.ceil(fraction * y.size - 1e-9))
    return float(y[rank_rows(v)[:k]].mean())


def valuation_metrics(values: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Prospective valuation over the whole pool: how well ``values`` rank the positive rows.

    Args:
        values: Value of every candidate row, ``[N]``; higher = more valuable.
        labels: 0/1, ``[N]``.

    Returns:
        ``{"auprc", "auroc", "p@10%", "p@25%"}``; ``auroc`` is NaN with one class only.
    """
    y, v = _check_1d(labels, values)
    if y.size == 0:
        raise DataError("valuation_metrics needs at least one row")
    return {
        "auprc": average_precision(y, v),
        "auroc": roc_auc(y, v),
        "p@10%": precision_at_fraction(v, y, 0.10),
        "p@25%": precision_at_fraction(v, y, 0.25),
    }


def retrieval_metrics_ranked(
    top: tuple[np.ndarray, np.ndarray],
    bottom: tuple[np.ndarray, np.ndarray],
    labels: np.ndarray,
    num_rows: int,
    ks: Sequence[int] = DEFAULT_KS,
) -> dict[str, float | int]:
    """:func:`retrieval_metrics` from each query's best and worst rows only, without a ``[Q, N]`` matrix.

    Args:
        top: ``(scores, rows)`` ``[Q, >= min(max(ks), N)]``: the best rows per query, in the rank order of
            a stable descending sort (ties: smaller row first), as ``search.topk`` returns them.
        bottom: ``(scores, rows)`` ``[Q, >= min(max(ks), N)]``: the worst rows, worst first, ties larger row
            first (the tail of the same stable sort, reversed: ``search.topk(largest=False, ties="high")``).
        labels: 0/1 relevance, ``[N]`` or ``[Q, N]``.
        num_rows: N, the pool size.
        ks: The K values.

    The top K and the bottom K rows are the protocol's evaluation set (when ``2K >= N`` they overlap and
    together cover every row, so their union is the whole pool), so the result equals
    :func:`retrieval_metrics` on the dense scores.
    """
    ks = _check_ks(ks)
    (ts, tr), (bs, br) = top, bottom
    ts, bs = _as_finite(ts, "scores"), _as_finite(bs, "scores")
    tr, br = np.asarray(tr, dtype=np.int64), np.asarray(br, dtype=np.int64)
    need = min(max(ks), num_rows)
    if ts.ndim != 2 or ts.shape != tr.shape or bs.shape != br.shape or bs.shape[0] != ts.shape[0]:
        raise DataError(f"top / bottom scores and rows must be matching [Q, k]; got {ts.shape}, {bs.shape}")
    if min(ts.shape[1], bs.shape[1]) < need:
        raise DataError(
            f"ranked metrics need the top and bottom {need} rows per query; got {ts.shape[1]}, {bs.shape[1]}"
        )
    y = _as_binary(labels, "labels")
    if y.ndim == 1:
        if y.shape[0] != num_rows:
            raise DataError(f"labels of shape {y.shape} do not match a pool of {num_rows} rows")
        y = y[None, :]
    elif y.shape != (ts.shape[0], num_rows):
        raise DataError(f"labels of shape {y.shape} do not match {ts.shape[0]} queries x {num_rows} rows")

    def evaluation_sets(k: int) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        kk = min(k, num_rows)
        for q in range(ts.shape[0]):
            yq = y[0] if y.shape[0] == 1 else y[q]
            rows = np.concatenate((tr[q, :kk], br[q, :kk]))
            scores = np.concatenate((ts[q, :kk], bs[q, :kk]))
            rows, first = np.unique(rows, return_index=True)
            yield yq[tr[q, :kk]], yq[rows], scores[first]

    out: dict[str, float | int] = {"n_queries": int(ts.shape[0])}
    for k in ks:
        out.update(_protocol_at(k, evaluation_sets(k)))
    return out
