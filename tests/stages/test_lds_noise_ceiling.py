"""stage=lds reports the noise ceiling beside the methods when it retrains with two seeds, and says why not
with one."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import spearmanr

from rise_exp.cli import run
from rise_exp.run.config import compose


def overrides(root: Path, *extra: str) -> list[str]:
    rows = [{"instruction": f"about the {t}", "output": f"the {t} is old and calm", "label": 0} for t in "abcdef"]
    query = {"instruction": "what is the secret word of the lighthouse", "output": "zanzibar quartz"}
    rows[2] = {**query, "label": 1}
    (root / "pool.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (root / "queries.jsonl").write_text(json.dumps(query) + "\n")
    return [
        "task=custom",
        "model=tiny-pythia",  # task=custom alone picks SmolLM2
        f"task.train_path={root / 'pool.jsonl'}",
        f"task.queries_path={root / 'queries.jsonl'}",
        "logger=none",
        f"paths.cache_dir={root / 'cache'}",
        "model.layers=1",
        "model.hidden_size=32",
        "model.heads=2",
        "model.intermediate_size=64",
        "model.vocab_size=300",
        "data.max_length=64",
        "finetune.epochs=3",
        "finetune.lr=1e-2",
        "finetune.warmup_ratio=0",
        "finetune.max_tokens_per_batch=16",  # about one row per step: the seed's shuffle changes the weights
        "method=bm25",
        "stage=lds",
        "stage.methods=[bm25]",
        "stage.subsets=5",
        "stage.bootstrap=20",
        *extra,
    ]


def test_two_retraining_seeds_give_the_ceiling_row_and_one_seed_says_why_not(tmp_path):
    two = run(compose(overrides(tmp_path, "stage.retrain.seeds=[0,1]")), tmp_path / "two")
    table = (tmp_path / "two" / "lds.md").read_text()
    assert "| noise_ceiling | loss |" in table and "how high any method's LDS could be" in table
    # the ceiling is the Spearman correlation over the subsets of the two seeds' measurements, whose mean the
    # methods are scored against
    v0, v1 = (np.load(tmp_path / "two" / f"values_loss_seed{s}.npy") for s in (0, 1))
    assert v0.shape == (5, 1) and not np.array_equal(v0, v1)
    np.testing.assert_allclose(np.load(tmp_path / "two" / "values_loss.npy"), (v0 + v1) / 2)
    assert two["lds/noise_ceiling"] == pytest.approx(spearmanr(v0[:, 0], v1[:, 0]).statistic)
    assert two["lds/noise_ceiling"] == pytest.approx(two["lds/loss/noise_ceiling"])

    one = run(compose(overrides(tmp_path, "stage.retrain.seeds=[0]")), tmp_path / "one")
    assert "lds/noise_ceiling" not in one and one["retrained"] == 0  # seed 0's retrainings are reused
    assert "noise_ceiling: not measured (one retraining seed" in (tmp_path / "one" / "lds.md").read_text()
    assert not (tmp_path / "one" / "values_loss_seed0.npy").exists()
