"""The field's reference methods under the protocol: method=ekfac attributes and valuates through the same
stages as RISE, and a second run on the same model and tokens reuses its cached factors."""

from __future__ import annotations

import numpy as np
import pytest

from rise_exp.cli import run
from rise_exp.run.config import compose

pytest.importorskip("kronfluence")

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
    "method=ekfac",
]


def factor_files(cache) -> dict[str, int]:
    """The cached EK-FAC factor files with their modification times."""
    return {str(p): p.stat().st_mtime_ns for p in (cache / "indexes").glob("*-ekfac-*/factors_*/*.safetensors")}


def test_ekfac_attributes_and_valuates_through_the_stages(tmp_path, monkeypatch):
    monkeypatch.setenv("RISE_EXP_CACHE", str(tmp_path / "cache"))
    metrics = run(compose(SMALL), tmp_path / "attribute")
    assert metrics["num_train"] == 40 and metrics["num_queries"] == 4
    assert 0.0 <= metrics["auprc@10"] <= 1.0 and metrics["index_bytes"] > 0
    scores = np.load(tmp_path / "attribute" / "scores.npy")
    assert scores.shape == (4, 40) and np.isfinite(scores).all() and scores.std() > 0

    fitted = factor_files(tmp_path / "cache")
    assert fitted
    valued = run(compose([*SMALL, "stage=valuate"]), tmp_path / "valuate")
    assert 0.0 <= valued["auprc"] <= 1.0
    assert factor_files(tmp_path / "cache") == fitted  # the valuation run read the attribution run's factors
