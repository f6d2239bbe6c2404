"""Fabricated Hydra sweeps for the report tests: job dirs as the CLI leaves them (resolved config,
.hydra/overrides.yaml, status.json, metrics.json)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

RISE = {
    "name": "rise",
    "kr": 128,
    "kh": 128,
    "kg": 64,
    "fusion": "rh+gh",
    "lam_rh": 1.0,
    "lam_gh": 0.3,
    "lam_rg": 0.0,
    "tau": 0.1,
    "rho": 0.92,
    "seed": 42,
}
BM25 = {"name": "bm25", "k1": 1.5, "b": 0.75}

# (overrides, auprc@10, bytes/row, auroc@10) of the `sweep` fixture; one more job (FAILED) failed.
JOBS: list[tuple[list[str], float, float, float | None]] = [
    (["method=bm25", "seed=0"], 0.30, 800.0, 0.8),
    (["method=bm25", "seed=1"], 0.34, 800.0, 0.8),
    (["method=rise", "seed=0"], 0.70, 1024.0, 0.9),
    (["method=rise", "seed=1"], 0.80, 1024.0, 0.7),
    (["method=rise", "method.kr=32", "seed=0"], 0.40, 256.0, 0.8),
    (["method=rise", "method.kr=32", "seed=1"], 0.50, 256.0, 0.8),
    (["method=rise", "method.kr=64", "seed=0"], 0.60, 512.0, 0.6),
    (["method=rise", "method.kr=64", "seed=1"], 0.66, 512.0, None),
]
FAILED = ["method=rise", "method.kr=64", "seed=2"]

# ablation variant -> (method settings it changes, auprc@10 of seeds 0 and 1, bytes/row)
VARIANTS: dict[str, tuple[dict[str, Any], tuple[float, float], float]] = {
    "base": ({}, (0.90, 0.94), 4096.0),
    "kr32": ({"kr": 32}, (0.80, 0.86), 2048.0),
    "kh64": ({"kh": 64}, (0.88, 0.90), 2048.0),
    "gh_only": ({"fusion": "gh"}, (0.60, 0.76), 1024.0),
}


def _write_job(
    root: Path,
    job: str,
    overrides: list[str],
    metrics: dict[str, Any] | None,
    status: dict[str, Any] | None,
    task: str = "howdy",
    method: dict[str, Any] | None = None,
) -> Path:
    d = root / job
    (d / ".hydra").mkdir(parents=True)
    cfg: dict[str, Any] = {
        "seed": 42,
        "stage": {"name": "attribute", "ks": [5, 10, 50]},
        "task": {"name": task},
        "model": {"name": "tiny-pythia"},
        "method": dict(method or BM25),
    }
    for o in overrides:
        key, value = o.split("=", 1)
        if key == "method":
            cfg["method"] = dict(RISE if value == "rise" else BM25)
        elif key == "seed":
            cfg["seed"] = int(value)
        elif key.startswith("method."):
            cfg["method"][key.split(".", 1)[1]] = yaml.safe_load(value)
    (d / "config.yaml").write_text(yaml.safe_dump(cfg))
    (d / ".hydra" / "config.yaml").write_text(yaml.safe_dump(cfg))
    (d / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    if metrics is not None:
        (d / "metrics.json").write_text(json.dumps(metrics))
    if status is not None:
        (d / "status.json").write_text(json.dumps(status))
    return d


def _metrics_for(auprc10: float, bytes_per_row: float, auroc10: float | None = 0.8) -> dict[str, Any]:
    return {
        "auprc@5": auprc10 + 0.1,
        "auprc@10": auprc10,
        "auprc@50": auprc10 - 0.1,
        "auroc@10": auroc10,
        "p@10": 0.5,
        "num_train": 100,
        "num_queries": 6,
        "index_seconds": 1.0,
        "query_seconds": 0.5,
        "index_bytes": bytes_per_row * 100,
        "index_bytes_per_row": bytes_per_row,
        "peak_rss_mb": 512.0,
    }


@pytest.fixture
def write_job() -> Callable[..., Path]:
    """``write_job(root, job, overrides, metrics, status, task=..., method=...)``: one Hydra job dir."""
    return _write_job


@pytest.fixture
def metrics_for() -> Callable[..., dict[str, Any]]:
    """``metrics_for(auprc10, bytes_per_row, auroc10=0.8)``: a metrics.json payload."""
    return _metrics_for


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    """A multirun: bm25 and rise (kr 128/32/64) x seeds 0/1, plus one failed rise kr=64 job (job 8)."""
    root = tmp_path / "multirun" / "2025-01-01_00-00-00"
    root.mkdir(parents=True)
    (root / "multirun.yaml").write_text(
        yaml.safe_dump({"hydra": {"overrides": {"task": ["method=rise,bm25", "seed=0,1"]}}})
    )
    for i, (ov, a10, nbytes, auroc) in enumerate(JOBS):
        _write_job(root, str(i), ov, _metrics_for(a10, nbytes, auroc), {"status": "ok"})
    _write_job(root, str(len(JOBS)), FAILED, None, {"status": "failed", "error": "CUDA out of memory\non rank 0"})
    return root


@pytest.fixture
def ablation_sweep(tmp_path: Path) -> Path:
    """An ``ablation=<variant>`` multirun (a config group changing method settings), 2 seeds per variant."""
    root = tmp_path / "ablate"
    root.mkdir()
    (root / "multirun.yaml").write_text("hydra: {}\n")
    job = 0
    for name, (changes, scores, nbytes) in VARIANTS.items():
        for seed, score in enumerate(scores):
            _write_job(
                root,
                str(job),
                [f"ablation={name}", f"seed={seed}"],
                _metrics_for(score, nbytes),
                {"status": "ok"},
                method={**RISE, **changes},
            )
            job += 1
    return root
