"""Top-k removal: which rows each retraining leaves out, and the measured change against the full pool.

A removal is (method, selection, k, query, draw): ``top`` / ``bottom`` remove the ``k`` rows a method
scores highest / lowest, ``random`` removes ``k`` random rows (method ``random``, one per draw). With
scope ``set`` one ranking serves the whole query set (the per-query scores fused by
:func:`rise_exp.retrieval.valuation.fuse_scores`) and every query is measured; with scope ``query`` each query has
its own ranking and only that query is measured. The change of a measure is ``value(without) -
value(full pool)``, the full pool retrained with the same seed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from rise_exp.counterfactual.subsets import keep_without, ranked_rows
from rise_exp.retrieval.valuation import fuse_scores

RANDOM = "random"


@dataclass(frozen=True)
class Removal:
    """One retraining of the removal experiment (``query`` None: every query, scope ``set``)."""

    method: str
    selection: str
    k: int
    query: int | None
    draw: int
    rows: tuple[int, ...]

    def keep(self, n: int) -> np.ndarray:
        """Bool mask of the rows this retraining keeps."""
        return keep_without(n, np.asarray(self.rows, dtype=np.int64))

    @property
    def tag(self) -> str:
        """A short name for progress bars and logs."""
        where = "" if self.query is None else f" q{self.query}"
        return f"{self.method} {self.selection}-{self.k}{where} d{self.draw}"


def plan_removals(
    scores: Mapping[str, np.ndarray],
    ks: Sequence[int],
    *,
    scope: str = "set",
    aggregate: str = "mean",
    selections: Sequence[str] = ("top", "bottom", "random"),
    random_draws: int = 1,
    random_seed: int = 0,
) -> list[Removal]:
    """Every removal of the experiment, in a fixed order (methods as given, then random).

    Args:
        scores: ``{method: [Q, N] scores}``, all over the same pool and queries.
        ks: Numbers of rows removed.
        scope: ``set`` (one ranking for the query set) or ``query`` (one per query).
        aggregate: How scope ``set`` fuses per-query scores (``mean`` or ``rrf``).
        selections: Any of ``top``, ``bottom``, ``random``.
        random_draws: Random removals per k (and per query with scope ``query``).
        random_seed: Seed of the first draw (draw ``d`` uses ``[random_seed + d, k, query + 1]``, 0 for the set).
    """
    if scope not in ("set", "query"):
        raise ValueError(f"unknown scope {scope!r}; allowed: set, query")
    first = next(iter(scores.values()))
    num_q, n = first.shape
    targets: list[int | None] = [None] if scope == "set" else list(range(num_q))
    out: list[Removal] = []
    for name, s in scores.items():
        ranking = {None: fuse_scores(s, mode=aggregate)} if scope == "set" else {q: s[q] for q in targets}
        for sel in (x for x in selections if x != RANDOM):
            for k in ks:
                for q in targets:
                    rows = ranked_rows(ranking[q], k, sel)
                    out.append(Removal(name, sel, int(k), q, 0, tuple(int(i) for i in rows)))
    if RANDOM in selections:
        for k in ks:
            for q in targets:
                for d in range(random_draws):
                    seed = [random_seed + d, int(k), 0 if q is None else q + 1]
                    rows = ranked_rows(np.zeros(n), k, RANDOM, seed=seed)
                    out.append(Removal(RANDOM, RANDOM, int(k), q, d, tuple(int(i) for i in rows)))
    return out


def query_changes(
    removal: Removal, without: Mapping[str, np.ndarray], full: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Change per measure of every query this removal targets (``without - full``; one entry with scope query)."""
    out = {}
    for name, values in without.items():
        delta = np.asarray(values, dtype=np.float64) - np.asarray(full[name], dtype=np.float64)
        out[name] = delta if removal.query is None else delta[[removal.query]]
    return out


def change_rows(
    removal: Removal, seed: int, without: Mapping[str, np.ndarray], full: Mapping[str, np.ndarray]
) -> list[dict[str, object]]:
    """One record per targeted query: the removal's identity, the seed, the query and each measure's change."""
    deltas = query_changes(removal, without, full)
    queries = range(len(next(iter(deltas.values())))) if removal.query is None else [removal.query]
    out: list[dict[str, object]] = []
    for pos, q in enumerate(queries):
        row: dict[str, object] = {
            "method": removal.method,
            "selection": removal.selection,
            "k": removal.k,
            "query": q,
            "draw": removal.draw,
            "seed": seed,
        }
        row.update({name: float(d[pos]) for name, d in deltas.items()})
        out.append(row)
    return out
