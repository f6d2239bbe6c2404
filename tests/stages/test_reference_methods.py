"""The field's reference methods under the protocol: method=ekfac and method=trackstar attribute and valuate
through the same stages as RISE, and a second run on the same model and tokens reuses their cached state."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rise_exp.cli import run
from rise_exp.run.config import compose

SMALL = [
    "model.layers=1",
    "model.hidden_size=32",
    "model.heads=2",
    "model.intermediate_size=64",
    "model.vocab_size=300",
    "finetune.epochs=1",
    "logger=none",
    "task.n_train=40",
    "task.n_queries=4",
]


def factor_files(cache) -> dict[str, int]:
    """The cached EK-FAC factor files with their modification times."""
    return {str(p): p.stat().st_mtime_ns for p in (cache / "indexes").glob("*-ekfac-*/factors_*/*.safetensors")}


def test_ekfac_attributes_and_valuates_through_the_stages(tmp_path, monkeypatch):
    pytest.importorskip("kronfluence")
    monkeypatch.setenv("RISE_EXP_CACHE", str(tmp_path / "cache"))
    metrics = run(compose([*SMALL, "method=ekfac"]), tmp_path / "attribute")
    assert metrics["num_train"] == 40 and metrics["num_queries"] == 4
    assert 0.0 <= metrics["auprc@10"] <= 1.0 and metrics["index_bytes"] > 0
    scores = np.load(tmp_path / "attribute" / "scores.npy")
    assert scores.shape == (4, 40) and np.isfinite(scores).all() and scores.std() > 0

    fitted = factor_files(tmp_path / "cache")
    assert fitted
    valued = run(compose([*SMALL, "method=ekfac", "stage=valuate"]), tmp_path / "valuate")
    assert 0.0 <= valued["auprc"] <= 1.0
    assert factor_files(tmp_path / "cache") == fitted  # the valuation run read the attribution run's factors


def test_trackstar_attributes_and_valuates_through_the_stages(tmp_path, monkeypatch):
    pytest.importorskip("bergson")
    monkeypatch.setenv("RISE_EXP_CACHE", str(tmp_path / "cache"))
    metrics = run(compose([*SMALL, "method=trackstar"]), tmp_path / "attribute")
    assert metrics["num_train"] == 40 and 0.0 <= metrics["auprc@10"] <= 1.0 and metrics["index_bytes"] > 0
    scores = np.load(tmp_path / "attribute" / "scores.npy")
    assert scores.shape == (4, 40) and np.isfinite(scores).all() and np.abs(scores).max() <= 1.0 + 1e-5
    (store,) = (tmp_path / "cache" / "indexes").glob("*-trackstar-*/gradients.bin")
    stamp = store.stat().st_mtime_ns
    valued = run(compose([*SMALL, "method=trackstar", "stage=valuate"]), tmp_path / "valuate")
    assert 0.0 <= valued["auprc"] <= 1.0 and store.stat().st_mtime_ns == stamp


def answer_pool(root: Path) -> list[str]:
    """Eight rows of which only row 3 holds the query's answer (as in the counterfactual stage tests)."""
    rows = [
        {"instruction": f"tell me about the {t}", "output": f"the {t} is large and old and calm", "label": 0}
        for t in ["river", "mountain", "city", "market", "doctor", "planet", "garden", "bridge"]
    ]
    query = {"instruction": "what is the secret word of the lighthouse", "output": "zanzibar quartz zanzibar quartz"}
    rows[3] = {**query, "label": 1}
    (root / "pool.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (root / "queries.jsonl").write_text(json.dumps(query) + "\n")
    return [
        "task=custom",
        "model=tiny-pythia",  # task=custom alone picks SmolLM2
        f"task.train_path={root / 'pool.jsonl'}",
        f"task.queries_path={root / 'queries.jsonl'}",
        "logger=none",
        f"paths.cache_dir={root / 'cache'}",
        *SMALL[:5],
        "model.max_position=128",
        "data.max_length=64",
        "finetune.epochs=30",
        "finetune.lr=1e-2",
        "finetune.warmup_ratio=0",
    ]


def test_reference_methods_enter_the_lds_table_and_find_the_answer_row(tmp_path):
    pytest.importorskip("kronfluence")
    pytest.importorskip("bergson")
    over = [*answer_pool(tmp_path), "stage=lds", "stage.methods=[ekfac,trackstar]", "stage.subsets=5"]
    metrics = run(compose([*over, "stage.bootstrap=50"]), tmp_path / "lds")
    for name in ("ekfac", "trackstar"):
        assert -1.0 <= metrics[f"lds/{name}"] <= 1.0
        assert f"| {name} | loss |" in (tmp_path / "lds" / "lds.md").read_text()
        # the one row that holds the query's answer is the one each method ranks first
        assert int(np.argmax(np.load(tmp_path / "lds" / f"scores_{name}.npy")[0])) == 3
