"""Query stage: new queries answered from an index, each with its top rows (ids, scores, text previews).

With ``stage.index`` the method, its settings and the model come from the index's manifest: no training
data, tokenizer training or finetune. Without it the configured task's index is built (or reused from
the index cache) first, and the queries default to the task's.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from rise_exp.run.config import RunConfig
from rise_exp.run.rankings import ranked_rows, write_query_line
from rise_exp.run.runner import publish
from rise_exp.run.serving import answering, rows_meta, top_rows


def run(run: RunConfig, run_dir: Path) -> dict[str, Any]:
    """Answer the queries; write topk.jsonl."""
    st = run.stage
    ans = answering(run, run_dir)
    method, queries, where = ans.method, ans.queries, ans.where
    index = getattr(method, "index", None)
    keeps_rows = index is not None or hasattr(method, "rows_meta")
    pool = None if ans.task is None or keeps_rows else ans.task.train
    t0 = time.perf_counter()
    scores, rows = top_rows(method, queries, st.k, run.search)
    seconds = time.perf_counter() - t0
    with open(run_dir / "topk.jsonl", "w") as f:
        for qi, q in enumerate(queries):
            meta = rows_meta(method, [int(r) for r in rows[qi]], pool)
            write_query_line(f, q, ranked_rows(rows[qi].tolist(), scores[qi].tolist(), meta))
    metrics = {
        "num_queries": len(queries),
        "k": st.k,
        "query_seconds": seconds,
        "index": where,
        "search": run.search.backend,
        "search_rerank": run.search.rerank,
    }
    publish(
        run,
        run_dir,
        metrics,
        stage="query",
        files=["topk.jsonl"],
        headline=["num_queries", "query_seconds"],
        title=f"query: {method.name} index {where}",
    )
    return metrics
