"""Attribute stage (retrospective attribution): score every query against every training row, evaluate."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from rise_exp.data.tasks import Task
from rise_exp.methods.registry import method_class
from rise_exp.metrics import retrieval_metrics
from rise_exp.pipeline import prepare_logged
from rise_exp.run_config import RunConfig
from rise_exp.runner import attribution_scores, build_on, publish

log = logging.getLogger(__name__)

#: Largest score matrix (queries x rows) saved as scores.npy for re-analysis.
MAX_SAVED_SCORES = 5_000_000


def write_topk(path: Path, scores: np.ndarray, task: Task, k: int) -> None:
    """One JSON line per query: its id and its top-``k`` training rows (id, score, label, text)."""
    k = min(k, scores.shape[1])
    with open(path, "w") as f:
        for qi, q in enumerate(task.queries):
            order = np.argsort(-scores[qi], kind="stable")[:k]
            labels = None if task.labels is None else task.labels if task.labels.ndim == 1 else task.labels[qi]
            top = [
                {
                    "rank": r + 1,
                    "id": task.train[i].id,
                    "score": float(scores[qi, i]),
                    "label": None if labels is None else int(labels[i]),
                    "text": task.train[i].full_text,
                }
                for r, i in enumerate(order)
            ]
            f.write(json.dumps({"query_id": q.id, "query": q.full_text, "top": top}) + "\n")


def label_metrics(task: Task, scores: np.ndarray, ks: tuple[int, ...]) -> dict[str, Any]:
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
    out: dict[str, Any] = retrieval_metrics(scores, task.labels, ks=ks)
    out.update(num_positive=positives)
    return out


def index_location(method: Any) -> str | None:
    """The directory of a method's persistent index (for the next run: ``stage=query stage.index=...``)."""
    index = getattr(method, "index", None)
    if index is not None:
        return str(index.root)
    path = getattr(method, "index_path", None)
    return str(path) if path else None


def run(run: RunConfig, run_dir: Path) -> dict[str, Any]:
    """Run the attribution protocol for ``run.method``; write metrics.json, topk.jsonl and scores.npy."""
    prep = prepare_logged(run, run_dir, need_model=method_class(run.method.name).needs_model)
    task = prep.task
    built = build_on(run.method, prep.ctx, task.train)
    scores, query_seconds = attribution_scores(built, task.queries)

    metrics: dict[str, Any] = label_metrics(task, scores, run.stage.ks)
    metrics.update(
        num_train=len(task.train), num_queries=len(task.queries), query_seconds=query_seconds, **built.cost()
    )
    if prep.finetune is not None:
        metrics.update(prep.finetune.metrics)
    index = index_location(built.method)
    if index:
        metrics["index"] = index
    files = ["topk.jsonl"]
    write_topk(run_dir / "topk.jsonl", scores, task, run.stage.write_topk)
    if scores.size <= MAX_SAVED_SCORES:  # the full matrix, for re-analysis of small pools, and what it indexes
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
