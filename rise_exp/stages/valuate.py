"""Valuate stage (prospective, zero-shot valuation): value every candidate against a target set."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from rise_exp.data.task_builders import Task
from rise_exp.retrieval.metrics import valuation_metrics
from rise_exp.run import rankings
from rise_exp.run.config import RunConfig
from rise_exp.run.pipeline import prepare_for_method
from rise_exp.run.runner import BuiltMethod, build_on, publish, valuation_values
from rise_exp.run.serving import open_index_method, rows_meta, stage_queries

log = logging.getLogger(__name__)
SELECTION, VALUES = "selection.jsonl", "values.npy"


def write_selection(path: Path, task: Task, values: np.ndarray) -> None:
    """The ranked candidate pool, best first (:mod:`rise_exp.run.rankings`' schema)."""
    order = np.argsort(-values, kind="stable").tolist()
    meta = [{"id": r.id, "label": r.label, "text": r.full_text} for r in (task.candidates[i] for i in order)]
    rankings.write_selection(path, order, values[order].tolist(), meta)


def _publish(run: RunConfig, run_dir: Path, metrics: dict[str, Any], values: np.ndarray, **kw: Any) -> dict[str, Any]:
    np.save(run_dir / VALUES, values.astype(np.float64))
    publish(run, run_dir, metrics, stage="valuate", files=[SELECTION, VALUES], **kw)
    return metrics


def run_on_index(run: RunConfig, run_dir: Path) -> dict[str, Any]:
    """Value every row of an existing index against the given targets (no data, no finetune): rankings only."""
    st = run.stage
    method = open_index_method(st.index, run_dir / "method", run.trainer)
    targets = stage_queries(st)
    n = len(method.index) if getattr(method, "index", None) is not None else method.num_rows
    values, seconds = valuation_values(BuiltMethod(method, n, 0.0), targets, st.mode)
    ranked = np.argsort(-values, kind="stable").tolist()
    rankings.write_selection(run_dir / SELECTION, ranked, values[ranked].tolist(), rows_meta(method, ranked))
    metrics = {"num_candidates": n, "num_targets": len(targets), "value_seconds": seconds, "index": str(st.index)}
    title = f"valuation: {method.name} index {st.index}"
    headline = ["num_candidates", "num_targets", "value_seconds"]
    return _publish(run, run_dir, metrics, values, headline=headline, title=title)


def run(run: RunConfig, run_dir: Path) -> dict[str, Any]:
    """Value the candidates zero-shot against the task's queries; write metrics.json and selection.jsonl."""
    if run.stage.index:
        return run_on_index(run, run_dir)
    st = run.stage
    prep = prepare_for_method(run, run_dir)
    task = prep.task
    labels = task.candidate_labels()
    built = build_on(run.method, prep.ctx, task.candidates)
    mode = run.stage.mode or getattr(run.method, "valuation", "mean")
    targets = stage_queries(st, task.queries)
    values, value_seconds = valuation_values(built, targets, mode)

    metrics: dict[str, Any] = {}
    if labels is None:
        log.warning("%s has no labels: writing the ranked pool only (selection.jsonl, values.npy)", task.title)
        metrics["note"] = "unlabelled pool: ranking only, no metrics"
    elif labels.sum() in (0, len(labels)):
        log.warning("%s: every candidate has label %d, so auPRC / auROC are undefined", task.title, int(labels[0]))
        metrics.update(num_positive=int(labels.sum()), note="one class only: no metrics")
    else:
        metrics.update(valuation_metrics(values, labels), num_positive=int(labels.sum()))
    metrics.update(
        num_candidates=len(task.candidates), num_targets=len(targets), value_seconds=value_seconds, **built.cost()
    )
    write_selection(run_dir / SELECTION, task, values)
    title = f"valuation: {run.method.name} on {task.title} ({run.model.name}, {mode})"
    return _publish(run, run_dir, metrics, values, title=title)
