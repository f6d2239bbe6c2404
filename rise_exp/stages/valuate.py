"""Valuate stage (prospective, zero-shot valuation): value every candidate against a target set."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from rise_exp.errors import DataError
from rise_exp.methods.registry import build_method
from rise_exp.metrics import valuation_metrics
from rise_exp.pipeline import peak_rss_mb, prepare_logged, to_dict
from rise_exp.results import print_metrics, write_json
from rise_exp.run_logging import close_loggers, log_summary, make_loggers


def candidate_labels(task) -> np.ndarray:
    """0/1 labels of the candidate pool (every candidate must carry one)."""
    missing = [r.id for r in task.candidates if r.label is None]
    if missing:
        raise DataError(f"task {task.name}: {len(missing)} candidates have no label (first: {missing[0]!r})")
    return np.asarray([int(r.label) for r in task.candidates])


def write_selection(path: Path, task, values: np.ndarray) -> None:
    """The ranked candidate pool, best first: one JSON line per row (rank, id, value, label)."""
    order = np.argsort(-values, kind="stable")
    with open(path, "w") as f:
        for rank, i in enumerate(order):
            r = task.candidates[i]
            f.write(json.dumps({"rank": rank + 1, "row": int(i), "id": r.id, "value": float(values[i]),
                                "label": r.label}) + "\n")


def run_valuate(cfg: DictConfig, run_dir: Path) -> dict[str, float]:
    """Score the candidates zero-shot against the task's queries; write metrics.json and selection.jsonl."""
    method_cfg = cfg.method
    need_model = bool(method_cfg.get("needs_model", True))
    prep = prepare_logged(cfg, run_dir, need_model=need_model)
    task = prep.task
    labels = candidate_labels(task)
    method = build_method(method_cfg, prep.ctx)
    t0 = time.perf_counter()
    method.build(task.candidates)
    index_seconds = time.perf_counter() - t0
    mode = str(cfg.stage.get("mode") or method_cfg.get("valuation", "mean"))
    t0 = time.perf_counter()
    values = np.asarray(method.value(task.queries, mode=mode), dtype=np.float64)
    value_seconds = time.perf_counter() - t0

    metrics: dict[str, float] = valuation_metrics(values, labels)
    metrics.update(num_candidates=len(task.candidates), num_targets=len(task.queries), num_positive=int(labels.sum()),
                   index_seconds=index_seconds, value_seconds=value_seconds, index_bytes=int(method.index_bytes),
                   index_bytes_per_row=float(method.index_bytes) / max(1, len(task.candidates)),
                   peak_rss_mb=peak_rss_mb())
    write_json(run_dir / "metrics.json", metrics)
    write_selection(run_dir / "selection.jsonl", task, values)
    np.save(run_dir / "values.npy", values)
    loggers = make_loggers(cfg.logger, run_dir, name="valuate", group=str(cfg.task.name), config=to_dict(cfg))
    log_summary(loggers, metrics)
    close_loggers(loggers)
    print_metrics(metrics, title=f"valuation: {cfg.method.name} on {task.name} ({cfg.model.name}, {mode})")
    return metrics
