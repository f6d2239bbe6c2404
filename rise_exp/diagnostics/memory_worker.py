"""One cost measurement in a fresh process: ``python -m rise_exp.diagnostics.memory_worker SPEC OUT``.

``SPEC`` (JSON): ``{"config": <resolved run config>, "pool": n, "queries": q, "work_dir": path}``. The
worker prepares the run (the finetune is cached by the parent), then builds the method on the first
``n`` rows and scores the first ``q`` queries while sampling its resident memory; ``OUT`` gets the JSON
of :func:`measure`.
"""

from __future__ import annotations

import gc
import json
import sys
from pathlib import Path
from typing import Any

from rise_exp.core.rss import PeakRss, current_rss_mb, process_peak_rss_mb
from rise_exp.run.config import RunConfig
from rise_exp.run.pipeline import method_needs_model, prepare
from rise_exp.run.runner import attribution_scores, build_on


def measure(run: RunConfig, work_dir: Path, pool: int, queries: int) -> dict[str, Any]:
    """Build ``run.method`` on the first ``pool`` rows and score ``queries`` queries: cost and memory.

    Returns:
        ``build_s``, ``query_s``, ``bytes_per_row``, ``base_rss_mb`` (after preparation),
        ``peak_rss_mb`` (sampled during build and scoring), ``rss_over_base_mb`` and ``process_peak_mb``.
    """
    prep = prepare(run, work_dir, need_model=method_needs_model(run))
    train, qs = prep.task.train[:pool], prep.task.queries[:queries]
    gc.collect()
    base = current_rss_mb()
    with PeakRss(interval=0.01) as peak:
        built = build_on(run.method, prep.ctx, train)
        _, query_s = attribution_scores(built, qs)
    cost = built.cost()
    return {
        "pool": len(train),
        "queries": len(qs),
        "build_s": cost["index_seconds"],
        "query_s": query_s,
        "bytes_per_row": cost["index_bytes_per_row"],
        "base_rss_mb": base,
        "peak_rss_mb": peak.peak_mb,
        "rss_over_base_mb": peak.peak_mb - base,
        "process_peak_mb": process_peak_rss_mb(),
    }


def main(argv: list[str] | None = None) -> None:
    spec_path, out_path = (argv or sys.argv[1:])[:2]
    spec = json.loads(Path(spec_path).read_text())
    from rise_exp.core.quiet import quiet_libraries

    quiet_libraries()
    run = RunConfig.from_cfg(spec["config"])
    result = measure(run, Path(spec["work_dir"]), int(spec["pool"]), int(spec["queries"]))
    Path(out_path).write_text(json.dumps(result))


if __name__ == "__main__":
    main()
