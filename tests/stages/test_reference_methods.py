"""The field's reference methods under the protocol: method=ekfac and method=trackstar attribute and valuate
through the same stages as RISE, and a second run on the same model and tokens reuses their cached state."""

from __future__ import annotations

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
