"""Explain stage: the per-token shares of each query's top rows (explain.jsonl), from an existing index.

With ``stage.index`` the method and model come from the index's manifest and the rows' tokens from the index
(no data, no finetune); queries come from ``stage.queries_path`` / ``stage.query_texts``. Without it the
configured task's index is reused from the cache (built once if missing) and the task's queries are
explained with their labels. Nothing is rescored or rebuilt beyond the queries' own forward passes.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from rise_exp.run.config import RunConfig
from rise_exp.run.explain import EXPLAIN_FILE, row_labels, write_explanations
from rise_exp.run.runner import publish
from rise_exp.run.serving import answering, rows_meta, top_rows


def run(run: RunConfig, run_dir: Path) -> dict[str, Any]:
    """Rank and explain; write explain.jsonl."""
    st = run.stage
    custom = bool(st.queries_path or st.query_texts)
    ans = answering(run, run_dir)
    method, queries, where, task = ans.method, ans.queries, ans.where, ans.task
    pool, labels, positive = (None, None, None) if task is None else (task.train, None, None)
    if task is not None and task.labels is not None and (task.labels.ndim == 1 or not custom):
        labels, positive = task.labels, task.positive
    t0 = time.perf_counter()
    scores, rows = top_rows(method, queries, st.k, run.search)
    seconds = time.perf_counter() - t0
    labels = row_labels(labels, rows)
    meta = None if pool is not None else [rows_meta(method, [int(r) for r in line]) for line in rows]
    summary = write_explanations(
        run_dir / EXPLAIN_FILE,
        method,
        queries,
        rows,
        scores,
        pool=pool,
        meta=meta,
        labels=labels,
        positive=positive,
    )
    metrics = {"num_queries": len(queries), "k": st.k, "query_seconds": seconds, "index": where}
    metrics.update({f"explain_{k}": v for k, v in summary.items()})
    publish(
        run,
        run_dir,
        metrics,
        stage="explain",
        files=[EXPLAIN_FILE],
        headline=["num_queries", "explain_pairs", "explain_seconds", "explain_max_gap"],
        title=f"explain: {method.name} index {where}",
    )
    return metrics
