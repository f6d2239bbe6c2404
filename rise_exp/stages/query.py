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
from rise_exp.run.runner import build_on, publish
from rise_exp.run.serving import open_index_method, rows_meta, stage_queries, top_rows


def run(run: RunConfig, run_dir: Path) -> dict[str, Any]:
    """Answer the queries; write topk.jsonl."""
    st = run.stage
    pool = None
    if st.index:
        method = open_index_method(st.index, run_dir / "method", run.trainer)
        queries = stage_queries(st)
        where = str(Path(st.index))
    else:
        from rise_exp.run.pipeline import prepare_for_method  # task, model, finetune: not needed from an index

        prep = prepare_for_method(run, run_dir)
        method = build_on(run.method, prep.ctx, prep.task.train).method
        queries = stage_queries(st, prep.task.queries)
        index = getattr(method, "index", None)
        where = str(index.root) if index is not None else str(getattr(method, "index_path", ""))
        pool = None if index is not None or hasattr(method, "rows_meta") else prep.task.train
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
