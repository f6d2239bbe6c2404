"""Removal stage: retrain without each method's top-k (and bottom-k, and k random) rows; measure the change.

Writes ``removal.md`` (mean ± std over queries per method, selection and k), ``removal.png`` (the change
against k, one line per method), ``removal.csv`` (one row per retraining, seed and query),
``removal_summary.csv``, ``removals.jsonl`` (the ids of the rows each retraining left out) and
``metrics.json`` (``<measure>/<method>/<selection>@<k>`` and ``..._std/...``). The full-pool retraining
and every removal are cached and shared with ``stage=lds`` (:mod:`rise_exp.counterfactual.retrain`).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from rise_exp.config.stages import RemovalStageConfig
from rise_exp.core.errors import ConfigError
from rise_exp.counterfactual.removal import Removal, change_rows, plan_removals
from rise_exp.data.task_builders import Task
from rise_exp.report.counterfactual import (
    REMOVAL_CSV,
    REMOVAL_SUMMARY_CSV,
    aggregate_removal,
    plot_removal,
    removal_markdown,
    write_rows,
)
from rise_exp.run.config import RunConfig
from rise_exp.run.pipeline import make_retrainer, prepare_retrainable
from rise_exp.run.runner import publish, stage_method_scores

log = logging.getLogger(__name__)
#: Extra column: the fraction of the removed rows with label 1 (Howdy: backdoored), when the pool is labelled.
REMOVED_POSITIVE = "removed_positive"


def removed_positive(task: Task, removal: Removal) -> float | None:
    """Share of the removed rows labelled 1 (per-query labels: the query's, or their mean for the set)."""
    if task.labels is None:
        return None
    labels = np.asarray(task.labels, dtype=np.float64)
    if labels.ndim == 2:
        labels = labels.mean(0) if removal.query is None else labels[removal.query]
    return float(labels[list(removal.rows)].mean())


def run(run: RunConfig, run_dir: Path) -> dict[str, Any]:
    """Run the removal protocol for ``run.stage``; returns the metrics written to ``metrics.json``."""
    st = run.stage
    assert isinstance(st, RemovalStageConfig)
    t0 = time.perf_counter()
    run_dir = Path(run_dir)
    prep = prepare_retrainable(run, run_dir)
    task, n = prep.task, len(prep.task.train)
    if max(st.ks) >= n:
        raise ConfigError(f"stage.ks entry {max(st.ks)} leaves no row of the {n}-row pool; use k < {n}")
    scores = stage_method_scores(run, prep.ctx, task.train, task.queries)
    plan = plan_removals(
        scores,
        st.ks,
        scope=st.scope,
        aggregate=st.aggregate,
        selections=st.selections,
        random_draws=st.random_draws,
        random_seed=st.random_seed,
    )
    retrainer = make_retrainer(run, task, run_dir)
    log.info("removal: %d retrainings x %d finetune seed(s) + the full pool", len(plan), len(st.retrain.seeds))
    rows: list[dict[str, Any]] = []
    with retrainer.task(1 + len(plan)), open(run_dir / "removals.jsonl", "w") as f:
        full = retrainer.per_seed(np.ones(n, dtype=bool), "full pool")
        for i, rem in enumerate(plan):
            per_seed = retrainer.per_seed(rem.keep(n), f"removal {i + 1}/{len(plan)} {rem.tag}")
            share = removed_positive(task, rem)
            for seed, values in per_seed.items():
                for row in change_rows(rem, seed, values, full[seed]):
                    rows.append({**row, **({} if share is None else {REMOVED_POSITIVE: share})})
            f.write(
                json.dumps(
                    {
                        "method": rem.method,
                        "selection": rem.selection,
                        "k": rem.k,
                        "query": rem.query,
                        "draw": rem.draw,
                        "removed_ids": [task.train[r].id for r in rem.rows],
                        REMOVED_POSITIVE: share,
                    }
                )
                + "\n"
            )

    measures = list(st.retrain.measures)
    columns = measures + ([REMOVED_POSITIVE] if task.labels is not None else [])
    agg = aggregate_removal(rows, columns)
    desc = (
        f"scope {st.scope}; finetune seeds {list(st.retrain.seeds)}, {st.random_draws} random draw(s); "
        "bands: ± std over queries"
    )
    title = f"top-k removal: {task.title}, {run.model.name}, {desc}"
    table = removal_markdown(agg, columns)
    full_means = {m: float(np.mean([full[s][m] for s in full])) for m in measures}
    base = ", ".join(f"{m} = {v:.4g}" for m, v in full_means.items())
    text = f"# {title}\n\nfull pool (k = 0): {base}\n\n{table}"
    (run_dir / "removal.md").write_text(text)
    write_rows(run_dir / REMOVAL_CSV, rows)
    agg.to_csv(run_dir / REMOVAL_SUMMARY_CSV, index=False)
    plot_removal(run_dir / "removal.png", agg, measures, title=f"{task.title}, {run.model.name}: {desc}")
    print(text)

    metrics: dict[str, Any] = {f"{m}/full": v for m, v in full_means.items()}
    for r in agg.to_dict("records"):
        for m in columns:
            metrics[f"{m}/{r['method']}/{r['selection']}@{r['k']}"] = r[f"{m}_mean"]
            metrics[f"{m}_std/{r['method']}/{r['selection']}@{r['k']}"] = r[f"{m}_std"]
    metrics.update(retrainer.stage_metrics(t0, removals=len(plan)))
    publish(
        run,
        run_dir,
        metrics,
        stage="removal",
        title=None,
        tables={"removal": (list(agg.columns), agg.values.tolist())},
        files=["removal.md", "removal.png", REMOVAL_CSV, REMOVAL_SUMMARY_CSV, "removals.jsonl"],
    )
    return metrics
