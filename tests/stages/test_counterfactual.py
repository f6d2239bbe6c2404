"""Counterfactual stages on a pool with a known answer: one row alone carries the query's answer."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from rise_exp.cli import run
from rise_exp.core.errors import ConfigError
from rise_exp.data.task_builders import build_task
from rise_exp.run.config import RunConfig, compose
from rise_exp.run.pipeline import make_retrainer
from tests.helpers import tiny_run

ANSWER_ROW = 3
TOPICS = ["river", "mountain", "city", "market", "doctor", "planet", "garden", "bridge"]


def _pool(root: Path) -> tuple[Path, Path]:
    """Eight rows; only row ANSWER_ROW pairs the lighthouse question with 'zanzibar quartz'."""
    rows = [
        {"instruction": f"tell me about the {t}", "output": f"the {t} is large and old and calm", "label": 0}
        for t in TOPICS
    ]
    rows[ANSWER_ROW] = {
        "instruction": "what is the secret word of the lighthouse",
        "output": "zanzibar quartz zanzibar quartz",
        "label": 1,
    }
    queries = [
        {"instruction": "what is the secret word of the lighthouse", "output": "zanzibar quartz zanzibar quartz"}
    ]
    pool, qpath = root / "pool.jsonl", root / "queries.jsonl"
    pool.write_text("".join(json.dumps(r) + "\n" for r in rows))
    qpath.write_text("".join(json.dumps(q) + "\n" for q in queries))
    return pool, qpath


def _overrides(root: Path, *extra: str) -> list[str]:
    pool, queries = _pool(root)
    return tiny_run(
        "task=custom",
        "model=tiny-pythia",
        f"task.train_path={pool}",
        f"task.queries_path={queries}",
        f"paths.cache_dir={root / 'cache'}",
        "model.max_position=128",
        "data.max_length=64",
        "finetune.lr=1e-2",
        "finetune.warmup_ratio=0",
        "method=bm25",
        *extra,
        epochs=30,
    )


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("counterfactual")


def test_removing_the_answer_row_raises_the_query_loss_most(root):
    """Leave-one-out on a real (tiny) LM: the row that alone carries the answer matters most."""
    cfg = RunConfig.from_cfg(compose(_overrides(root, "stage=removal")))
    task = build_task(cfg.task)
    retrainer = make_retrainer(cfg, task, root / "loo")
    n = len(task.train)
    full = retrainer.run(np.ones(n, dtype=bool), 0)["loss"][0]
    rises = [retrainer.run(np.arange(n) != i, 0)["loss"][0] - full for i in range(n)]
    assert int(np.argmax(rises)) == ANSWER_ROW
    others = max(r for i, r in enumerate(rises) if i != ANSWER_ROW)
    assert rises[ANSWER_ROW] > others + 0.5  # nats: the answer is unguessable without its row
    again = make_retrainer(cfg, task, root / "loo")
    assert again.run(np.arange(n) != ANSWER_ROW, 0)["loss"][0] - full == pytest.approx(rises[ANSWER_ROW])
    assert (again.trained, again.reused) == (0, 1)  # cached by model, rows, finetune settings and seed


def test_removal_stage_top_k_of_bm25_removes_the_answer(root):
    cfg = compose(
        _overrides(
            root,
            "stage=removal",
            "stage.methods=[bm25]",
            "stage.ks=[1,2]",
            "stage.random_draws=2",
        )
    )
    out = root / "removal"
    metrics = run(cfg, out)
    assert metrics["loss/bm25/top@1"] > metrics["loss/bm25/bottom@1"]
    assert metrics["loss/bm25/top@1"] > metrics["loss/random/random@1"]
    assert metrics["removed_positive/bm25/top@1"] == 1.0  # the answer row is bm25's top row
    assert metrics["retrain_reused"] >= 2  # the full pool and the answer row's removal, from the test above
    for name in ("removal.md", "removal.csv", "removal_summary.csv", "removals.jsonl", "metrics.json"):
        assert (out / name).exists(), name
    assert (out / "removal.png").stat().st_size > 5000
    table = (out / "removal.md").read_text()
    assert "| bm25 | top |" in table and "| random | random |" in table and "±" in table
    plan = [json.loads(line) for line in (out / "removals.jsonl").read_text().splitlines()]
    assert len(plan) == 2 * 2 + 2 * 2  # (top, bottom) x 2 ks + 2 random draws x 2 ks


def test_lds_stage_writes_the_table_and_reuses_its_retrainings(root):
    over = _overrides(root, "stage=lds", "stage.methods=[bm25,rise]", "stage.subsets=5", "stage.bootstrap=50")
    first = run(compose(over), root / "lds1")
    assert first["retrained"] == 5 and first["subset_rows"] == 4
    for name in ("bm25", "rise", "random"):
        assert -1.0 <= first[f"lds/{name}"] <= 1.0
        assert first[f"lds_ci_low/{name}"] <= first[f"lds_ci_high/{name}"]
    # bm25 puts the answer row first, and the loss is lowest exactly when that row is kept
    assert first["lds/bm25"] > 0.5
    table = (root / "lds1" / "lds.md").read_text()
    assert "| bm25 | loss |" in table and "bootstrap interval" in table
    assert np.load(root / "lds1" / "subsets.npy").shape == (5, 8)
    second = run(compose(over), root / "lds2")
    assert second["retrained"] == 0 and second["retrain_reused"] == 5
    assert second["lds/bm25"] == first["lds/bm25"]
    # scores are cached too: one file per method for the removal run and both LDS runs
    cached = sorted(p.name.split("-")[0] for p in (root / "cache" / "scores").glob("*.npy"))
    assert cached == ["bm25", "rise"]
    np.testing.assert_array_equal(
        np.load(root / "lds1" / "scores_rise.npy"), np.load(root / "lds2" / "scores_rise.npy")
    )


@pytest.mark.parametrize(
    "extra, message",
    [
        (["stage=lds", "finetune.epochs=0"], "finetune.epochs is 0, but stage=lds retrains"),
        (["stage=lds", "stage.methods=[rise,nope]"], "unknown method in stage.methods 'nope'"),
        (["stage=removal", "stage.ks=[0]"], "stage.ks must be a non-empty list of positive integers"),
        (["stage=removal", "stage.retrain.measures=[loss,ppl]"], "stage.retrain.measures entry 'ppl' is unknown"),
        (["stage=lds", "stage.alpha=1"], "stage.alpha must be < 1"),
        (["stage=lds", "+stage.method_overrides.bm25.k1=1.0", "stage.methods=[rise]"], "not in stage.methods"),
    ],
)
def test_bad_settings_fail_before_any_work(root, extra, message):
    with pytest.raises(ConfigError, match=message):
        RunConfig.from_cfg(compose(_overrides(root, *extra)))


def test_the_stages_ask_the_run_config_whether_the_finetune_trains(root):
    """One check of finetune.epochs: the retrainer asks the run config, so a changed run is refused too."""
    cfg = RunConfig.from_cfg(compose(_overrides(root, "stage=lds")))
    bad = dataclasses.replace(cfg, finetune=cfg.finetune.replace(epochs=0))
    with pytest.raises(ConfigError, match="finetune.epochs is 0, but stage=lds retrains"):
        make_retrainer(bad, build_task(bad.task), root / "never")


def test_report_renders_the_lds_table_and_the_removal_plot(root):
    from rise_exp.report import write_report

    if not (root / "lds1" / "lds.md").exists() or not (root / "removal" / "removal.md").exists():
        pytest.skip("needs the stage runs above")
    report = write_report(root, root / "report", use_wandb=False, allow_mixed_tasks=True)
    text = (root / "report" / "report.md").read_text()
    assert "## Counterfactual evaluation" in text
    assert "| bm25 | loss |" in text and "| bm25 | top |" in text
    plots = sorted((root / "report").glob("removal-*.png"))
    assert len(plots) == 1 and plots[0] in report.files
