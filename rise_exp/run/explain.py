"""``explain.jsonl``: the per-token shares of each query's top rows, written next to ``topk.jsonl``.

One JSON line per query (format in docs/design.md, "Explanations"): the method, whether it has exact
shares (``available``; if not, ``note`` says why and no rows follow), the unit (``token``, or ``word`` for
BM25) and its top rows, each with the ranked ``score``, the ``explained`` score the shares sum to, and the
row's and the query's pieces as ``[text, share]`` pairs (share null: not scored).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rise_exp.data.records import Record
from rise_exp.methods.base import AttributionMethod

log = logging.getLogger(__name__)

EXPLAIN_FILE = "explain.jsonl"
EXACT_NOTE = (
    "each query token's and each row token's share of the score; each side sums to 'explained', the pair's score "
    "recomputed exactly; 'score' is the ranking's (read from the index, so it may differ by its storage rounding)"
)


def write_explanations(
    path: Path,
    method: AttributionMethod,
    queries: Sequence[Record],
    rows: np.ndarray,
    scores: np.ndarray,
    *,
    pool: Sequence[Record] | None = None,
    meta: Sequence[Sequence[dict[str, Any]]] | None = None,
    labels: np.ndarray | None = None,
    positive: str | None = None,
) -> dict[str, Any]:
    """Explain every ``(queries[q], rows[q, j])`` pair and write ``path``.

    Args:
        path: The ``explain.jsonl`` to write.
        method: The built (or attached) method.
        queries: The queries, in the order of ``rows``.
        rows: ``[Q, k]`` pool rows, best first; ``scores`` ``[Q, k]`` their ranked scores.
        pool: The built pool when the caller has it (ids, labels, domains and the rows' texts).
        meta: Without a pool, each row's ``{"id", ...}`` from the index (``[Q][k]``).
        labels: ``[Q, k]`` 0/1 labels of the rows (the task's), or None.
        positive: What label 1 means (e.g. ``backdoored``), recorded with the labels.

    Returns:
        ``{"pairs", "seconds", "max_gap"}`` (``max_gap``: the largest ``|score - explained|``), or
        ``{"note"}`` for a method without shares.
    """
    reason = method.explain_unavailable()
    unit = method.share_unit
    head = {"method": method.name, "available": reason is None, "unit": unit, "note": reason or EXACT_NOTE}
    if positive:
        head["positive"] = positive
    t0 = time.perf_counter()
    lists = [[int(i) for i in line] for line in rows]
    if reason is None:
        from rise_exp.run.runner import placed

        with placed(method.ctx):  # the forwards in the placement's precision, like the index's
            explained = method.explain(queries, lists, pool)
    else:
        explained = [[] for _ in queries]
    seconds = time.perf_counter() - t0
    gaps = []
    with open(path, "w") as f:
        for qi, q in enumerate(queries):
            out = []
            for j, pair in enumerate(explained[qi]):
                i = lists[qi][j]
                entry: dict[str, Any] = {"rank": j + 1, "row": i, **_row_facts(i, pool, meta, qi, j)}
                if labels is not None:
                    entry["label"] = int(labels[qi, j])
                entry.update(score=float(scores[qi, j]), explained=pair.explained)
                entry.update(tokens=pair.row.to_json(), query_tokens=pair.query.to_json())
                gaps.append(abs(entry["score"] - pair.explained))
                out.append(entry)
            line = {"query_id": q.id, "query": q.full_text, **_facts(q), **head, "rows": out}
            f.write(json.dumps(line, ensure_ascii=False) + "\n")
    if reason is not None:
        log.info("explain: %s", reason)
        return {"note": reason}
    summary = {"pairs": len(gaps), "seconds": seconds, "max_gap": max(gaps, default=0.0)}
    log.info(
        "explained %d (query, row) pairs by %s in %.1fs (largest |score - explained| %.2g): %s",
        summary["pairs"],
        unit,
        seconds,
        summary["max_gap"],
        path.name,
    )
    return summary


def row_labels(labels: np.ndarray | None, rows: np.ndarray) -> np.ndarray | None:
    """The ``[Q, k]`` labels of ranked ``rows`` from a task's ``[N]`` (shared) or ``[Q, N]`` labels."""
    if labels is None:
        return None
    return labels[rows] if labels.ndim == 1 else np.take_along_axis(labels, rows, axis=1)


def _facts(record: Record) -> dict[str, Any]:
    """A record's label and domain, where it has them."""
    return {k: v for k, v in (("label", record.label), ("domain", record.domain)) if v is not None}


def _row_facts(
    i: int, pool: Sequence[Record] | None, meta: Sequence[Sequence[dict[str, Any]]] | None, qi: int, j: int
) -> dict[str, Any]:
    if pool is not None:
        return {"id": pool[i].id, **_facts(pool[i])}
    return {"id": meta[qi][j].get("id")} if meta is not None else {}
