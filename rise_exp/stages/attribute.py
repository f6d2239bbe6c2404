"""Attribute stage (retrospective attribution): score every query against every training row, evaluate."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig

from rise_exp.methods.registry import build_method
from rise_exp.metrics import retrieval_metrics
from rise_exp.pipeline import peak_rss_mb, prepare_logged, to_dict
from rise_exp.results import print_metrics, write_json
from rise_exp.run_logging import close_loggers, log_summary, make_loggers

log = logging.getLogger(__name__)

MAX_SAVED_SCORES = 5_000_000


def write_topk(path: Path, scores: np.ndarray, task: Any, k: int) -> None:
    """One JSON line per query: its id and its top-``k`` training rows (id, score, label, text)."""
    k = min(k, scores.shape[1])
    with open(path, "w") as f:
        for qi, q in enumerate(task.queries):
            order = np.argsort(-scores[qi], kind="stable")[:k]
            labels = task.labels if task.labels.ndim == 1 else task.labels[qi]
            top = [
                {"rank": r + 1, "id": task.train[i].id, "score": float(scores[qi, i]), "label": int(labels[i]),
                 "text": task.train[i].full_text}
                for r, i in enumerate(order)
            ]
            f.write(json.dumps({"query_id": q.id, "query": q.full_text, "top": top}) + "\n")


def run_attribute(cfg: DictConfig, run_dir: Path) -> dict[str, float]:
    """Run the attribution protocol for ``cfg.method`` and write metrics.json and topk.jsonl."""
    method_cfg = cfg.method
    need_model = bool(method_cfg.get("needs_model", True))
    prep = prepare_logged(cfg, run_dir, need_model=need_model)
    task = prep.task

    method = build_method(method_cfg, prep.ctx)
    t0 = time.perf_counter()
    method.build(task.train)
    index_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    scores = np.asarray(method.score(task.queries), dtype=np.float32)
    query_seconds = time.perf_counter() - t0
    expected = (len(task.queries), len(task.train))
    if scores.shape != expected:
        raise RuntimeError(f"method {method.name} returned scores of shape {scores.shape}, expected {expected}")

    metrics: dict[str, float] = retrieval_metrics(scores, task.labels, ks=tuple(cfg.stage.ks))
    metrics.update(
        num_train=len(task.train), num_queries=len(task.queries), num_positive=int(np.asarray(task.labels).sum()),
        index_seconds=index_seconds, query_seconds=query_seconds, index_bytes=int(method.index_bytes),
        index_bytes_per_row=float(method.index_bytes) / max(1, len(task.train)), peak_rss_mb=peak_rss_mb(),
    )
    if prep.finetune is not None:
        metrics.update(prep.finetune.metrics)
    write_json(run_dir / "metrics.json", metrics)
    write_topk(run_dir / "topk.jsonl", scores, task, int(cfg.stage.write_topk))
    if scores.size <= MAX_SAVED_SCORES:  # the full matrix, for re-analysis of small pools
        np.save(run_dir / "scores.npy", scores)

    loggers = make_loggers(cfg.logger, run_dir, name="attribute", group=str(cfg.task.name), config=to_dict(cfg))
    log_summary(loggers, metrics)
    close_loggers(loggers)
    print_metrics(metrics, title=f"{cfg.method.name} on {task.name} ({cfg.model.name})")
    return metrics
