"""Attribute stage (retrospective attribution): score every query against every training row, evaluate.

Small pools keep the dense ``[queries, rows]`` score matrix (``scores.npy``); a large pool
(``stage.scores=topk``, or ``auto`` above ``stage.dense_max_cells``) keeps only each query's top and
bottom K rows, streamed over the index, and computes the same metrics from them.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rise_exp.core.errors import ConfigError
from rise_exp.core.results import CHANCE_FILE, MEMBERS_FILE, write_json
from rise_exp.data.task_builders import Task
from rise_exp.retrieval.metrics import chance_retrieval_metrics, retrieval_metrics, retrieval_metrics_ranked
from rise_exp.run.bm25_check import bm25_agreement
from rise_exp.run.config import RunConfig
from rise_exp.run.explain import EXPLAIN_FILE, row_labels, write_explanations
from rise_exp.run.pipeline import prepare_for_method
from rise_exp.run.rankings import ranked_rows, write_query_line
from rise_exp.run.runner import (
    Ranked,
    attribution_ranked,
    attribution_scores,
    build_on,
    placed,
    publish,
    rank_dense,
)

log = logging.getLogger(__name__)
#: Random rankings averaged for chance.json.
CHANCE_DRAWS = 20


def write_topk(path: Path, ranked: Ranked, task: Task, k: int) -> None:
    """One JSON line per query: its top-``k`` training rows (:mod:`rise_exp.run.rankings`' schema)."""
    scores, rows = ranked.top
    with open(path, "w") as f:
        for qi, q in enumerate(task.queries):
            labels = None if task.labels is None else task.labels if task.labels.ndim == 1 else task.labels[qi]
            top_rows = rows[qi, :k].tolist()
            meta = [
                {"id": r.id, "text": r.full_text, "label": None if labels is None else labels[i]}
                for i, r in ((i, task.train[i]) for i in top_rows)
            ]
            write_query_line(f, q, ranked_rows(top_rows, scores[qi, :k].tolist(), meta))


def explain_top(method: Any, task: Task, ranked: Ranked, k: int, path: Path) -> None:
    """explain.jsonl: the per-token shares of each query's top ``k`` rows (run/explain.py)."""
    scores, rows = (a[:, :k] for a in ranked.top)
    labels = row_labels(task.labels, rows)
    write_explanations(path, method, task.queries, rows, scores, pool=task.train, labels=labels, positive=task.positive)


def write_chance(
    path: Path, task: Task, ks: tuple[int, ...], max_cells: int = 2_000_000, draws: int = CHANCE_DRAWS
) -> bool:
    """chance.json: the protocol's metrics under random rankings (:func:`chance_retrieval_metrics`; labels shared
    by the queries, at most ``max_cells`` random scores per draw), for the results page. False: not computed."""
    if task.labels is None or task.labels.ndim != 1 or not task.labels.any():
        return False
    n = len(task.train)
    queries = max(1, min(len(task.queries), max_cells // max(1, n)))
    chance = chance_retrieval_metrics(task.labels, queries, ks, draws=draws)
    write_json(path, {"draws": draws, "queries": queries, "num_positive": int(task.labels.sum()), **chance})
    return True


def label_metrics(task: Task, scores: np.ndarray | Ranked, ks: tuple[int, ...]) -> dict[str, Any]:
    """The top-K / bottom-K protocol when the pool is labelled and has positives; else a warning and nothing."""
    if not task.labelled:
        log.warning("%s has no labels: writing rankings only (topk.jsonl, scores.npy), no metrics", task.title)
        return {"note": "unlabelled pool: rankings only, no metrics"}
    positives = int(np.asarray(task.labels).sum())
    if positives == 0:
        log.warning(
            "%s: no training row has label 1 (%s), so auPRC / P@K are undefined; writing rankings only",
            task.title,
            task.positive,
        )
        return {"num_positive": 0, "note": "no positive row: rankings only, no metrics"}
    if isinstance(scores, Ranked):
        out: dict[str, Any] = retrieval_metrics_ranked(scores.top, scores.bottom, task.labels, len(task.train), ks)
    else:
        out = retrieval_metrics(scores, task.labels, ks=ks)
    out.update(num_positive=positives)
    return out


def index_location(method: Any) -> str | None:
    """The directory of a method's persistent index (for the next run: ``stage=query stage.index=...``)."""
    index = getattr(method, "index", None)
    if index is not None:
        return str(index.root)
    path = getattr(method, "index_path", None)
    return str(path) if path else None


def check_members(run: RunConfig) -> None:
    """``stage.members`` needs an ensemble index (method=rise or rapidin with ``method.ensemble >= 2``;
    checked before any model is loaded or index built)."""
    ensemble = getattr(run.method, "ensemble", None)
    if run.stage.members and (ensemble is None or ensemble < 2):
        raise ConfigError(
            f"stage.members=true needs method=rise or method=rapidin with method.ensemble >= 2 (got "
            f"method={run.method.name}"
            + (f", method.ensemble={ensemble}" if ensemble is not None else "")
            + "): each member is one sketch seed of the same index"
        )


def member_metrics(method: Any, task: Task, ks: tuple[int, ...], run_dir: Path) -> dict[str, Any]:
    """Each ensemble member's metrics alone (``members.csv``, a row per sketch seed) and their mean and std
    (sample std, ddof 1) over the members."""
    with placed(method.ctx):
        members = method.member_scores(task.queries)
    per_seed = {seed: label_metrics(task, s, ks) for seed, s in members.items()}
    table = pd.DataFrame([{"sketch_seed": seed, **m} for seed, m in per_seed.items()])
    table.to_csv(run_dir / MEMBERS_FILE, index=False)
    numeric = table.drop(columns="sketch_seed").select_dtypes("number")
    return {
        "sketch_seeds": list(per_seed),
        "mean": numeric.mean().to_dict(),
        "std": numeric.std(ddof=1).to_dict(),
    }


def run(run: RunConfig, run_dir: Path) -> dict[str, Any]:
    """Run the attribution protocol for ``run.method``; write metrics.json, topk.jsonl and scores.npy."""
    check_members(run)
    prep = prepare_for_method(run, run_dir)
    task = prep.task
    built = build_on(run.method, prep.ctx, task.train)
    st = run.stage
    exact = run.search.backend == "exact" or not hasattr(built.method, "top_bottom")
    cells = len(task.queries) * built.pool_size
    dense = exact and (st.scores == "dense" or (st.scores == "auto" and cells <= st.dense_max_cells))
    k = max(*st.ks, st.write_topk)
    scores: np.ndarray | None = None
    if dense:
        scores, query_seconds = attribution_scores(built, task.queries)
        ranked = rank_dense(scores, k, k)
    else:
        ranked, query_seconds = attribution_ranked(built, task.queries, k, max(st.ks), search=run.search)
        log.info(
            "%s: kept the top %d and bottom %d rows per query (stage.scores=%s)", task.title, k, max(st.ks), st.scores
        )

    metrics: dict[str, Any] = label_metrics(task, scores if scores is not None else ranked, st.ks)
    metrics.update(
        num_train=len(task.train),
        num_queries=len(task.queries),
        query_seconds=query_seconds,
        scores="dense" if dense else "topk",
        **built.cost(),
    )
    if not exact:
        searcher = built.method.searcher(run.search)
        metrics.update(
            search=run.search.backend,
            search_rerank=run.search.rerank,
            search_bytes_per_row=searcher.bytes_per_row,
            search_build_seconds=searcher.build_seconds,
        )
    if prep.finetune is not None:
        metrics.update(prep.finetune.metrics)
    index = index_location(built.method)
    if index:
        metrics["index"] = index
    if st.bm25_check and run.task.name == "custom" and run.method.name != "bm25" and cells <= st.dense_max_cells:
        labels = np.asarray(task.labels) if task.labelled else None
        metrics.update(
            bm25_agreement(run.method.name, ranked.top[1][:, :10], prep.ctx, task.train, task.queries, labels)
        )
    files = ["topk.jsonl"]
    if st.members:
        if not task.labelled:
            log.warning("stage.members: %s has no labels, so no member metrics", task.title)
        else:
            metrics["members"] = member_metrics(built.method, task, st.ks, run_dir)
            files.append(MEMBERS_FILE)
    write_topk(run_dir / "topk.jsonl", ranked, task, st.write_topk)
    if st.explain:
        explain_top(built.method, task, ranked, st.write_topk, run_dir / EXPLAIN_FILE)
        files.append(EXPLAIN_FILE)
    if write_chance(run_dir / CHANCE_FILE, task, st.ks):
        files.append(CHANCE_FILE)
    if scores is not None:  # the full matrix, for re-analysis of small pools, and what it indexes
        np.save(run_dir / "scores.npy", scores)
        ids = {"rows": [r.id for r in task.train], "queries": [q.id for q in task.queries]}
        (run_dir / "scores_ids.json").write_text(json.dumps(ids))
        files += ["scores.npy", "scores_ids.json"]
    publish(
        run,
        run_dir,
        metrics,
        stage="attribute",
        files=files,
        title=f"{run.method.name} on {task.title} ({run.model.name})",
    )
    return metrics
