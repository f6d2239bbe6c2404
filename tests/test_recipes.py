"""docs/design.md's recipes, followed step by step: a new method, a new task and a new stage run end to end."""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from rise_exp import stages
from rise_exp.config.settings import Settings, setting
from rise_exp.config.stages import STAGE_CONFIGS, StageConfig
from rise_exp.config.task import TASK_CONFIGS, TaskConfig
from rise_exp.core.paths import CONF_DIR
from rise_exp.data import task_builders
from rise_exp.data.records import Record
from rise_exp.data.task_builders import Task, record_labels
from rise_exp.methods import registry
from rise_exp.methods.base import AttributionMethod
from rise_exp.run.config import RunConfig, compose

# ------------------------------------------------------------------ a method: random scores


@dataclass(frozen=True)
class CoinConfig(Settings):
    """Step 1: the settings class."""

    GROUP = "method"
    name: str = setting("coin", "method name")
    scale: float = setting(1.0, "score scale", gt=0)
    seed: int | None = setting(None, "null = the global seed")


class Coin(AttributionMethod):
    """Step 2: the method (seeded random scores; needs no model)."""

    name = "coin"
    needs_model = False

    def build(self, train: Sequence[Record]) -> None:
        self.n = len(train)
        self.index_bytes = 8 * self.n

    def score(self, queries: Sequence[Record]) -> np.ndarray:
        seed = self.ctx.seed if self.cfg.seed is None else self.cfg.seed
        return self.cfg.scale * np.random.default_rng(seed).random((len(queries), self.n)).astype(np.float32)


# ------------------------------------------------------------------ a task: does the text mention a colour?


@dataclass(frozen=True)
class ColoursTaskConfig(TaskConfig):
    """Task step 1: the settings class."""

    name: str = setting("colours", "task name")
    n_train: int = setting(30, "training rows", gt=1)


def build_colours(s: ColoursTaskConfig) -> Task:
    """Task step 2: the builder."""
    words = ["red", "stone", "blue", "paper", "green", "glass"]
    train = [
        Record(id=f"r{i}", text=f"the {words[i % 6]} thing number {i}", label=int(i % 2 == 0)) for i in range(s.n_train)
    ]
    queries = [Record(id="q0", text="a red and blue thing")]
    return Task(name="colours", train=train, queries=queries, labels=record_labels(train, "task colours"))


# ------------------------------------------------------------------ a stage: count the rows


@dataclass(frozen=True)
class CountStageConfig(StageConfig):
    """Stage step 1: the settings class."""

    name: str = setting("count", "stage name")
    scale: int = setting(1, "multiply the count", gt=0)


def run_count(run: RunConfig, run_dir: Path) -> dict:
    """Stage step 2: the entry point."""
    from rise_exp.run.pipeline import prepare_logged
    from rise_exp.run.runner import publish

    prep = prepare_logged(run, run_dir, need_model=False)
    metrics = {"rows": run.stage.scale * len(prep.task.train)}
    publish(run, run_dir, metrics, stage="count", title="count")
    return metrics


@pytest.fixture()
def extended(tmp_path, monkeypatch):
    """A copy of conf/ with the three new YAML files, and the three registry lines."""
    conf = tmp_path / "conf"
    shutil.copytree(CONF_DIR, conf)
    # method step 3 + 4
    monkeypatch.setitem(registry.METHODS, "coin", registry.MethodEntry(f"{__name__}:Coin", f"{__name__}:CoinConfig"))
    (conf / "method" / "coin.yaml").write_text("defaults:\n  - /schema/method/coin@_here_\n  - _self_\n")
    # task step 1 + 2 + 3
    monkeypatch.setitem(TASK_CONFIGS, "colours", ColoursTaskConfig)
    monkeypatch.setitem(task_builders.BUILDERS, "colours", build_colours)
    (conf / "task" / "colours.yaml").write_text("defaults:\n  - /schema/task/colours@_here_\n  - _self_\n")
    # stage step 1 + 2 + 3
    monkeypatch.setitem(STAGE_CONFIGS, "count", CountStageConfig)
    monkeypatch.setitem(stages.STAGES, "count", f"{__name__}:run_count")
    (conf / "stage" / "count.yaml").write_text("defaults:\n  - /schema/stage/count@_here_\n  - _self_\n")
    monkeypatch.setenv("RISE_EXP_CACHE", str(tmp_path / "cache"))
    return conf


def _run(conf: Path, run_dir: Path, *overrides: str) -> dict:
    from rise_exp.cli import run

    return run(compose(["logger=none", *overrides], config_dir=str(conf)), run_dir)


def test_new_method_runs_the_attribute_and_valuate_stages(extended, tmp_path):
    metrics = _run(extended, tmp_path / "a", "method=coin", "method.scale=2", "task.n_train=40", "task.n_queries=4")
    assert metrics["num_train"] == 40 and 0 <= metrics["auprc@10"] <= 1
    scores = np.load(tmp_path / "a" / "scores.npy")
    np.testing.assert_allclose(scores, 2 * np.random.default_rng(42).random((4, 40)), rtol=1e-6)
    _run(
        extended,
        tmp_path / "v",
        "method=coin",
        "stage=valuate",
        "task=brain_rot",
        "task.n_train=40",
        "task.n_queries=4",
        "task.n_heldout=4",
    )
    assert (tmp_path / "v" / "selection.jsonl").exists()
    with pytest.raises(Exception, match="method.scale must be > 0"):
        RunConfig.from_cfg(compose(["method=coin", "method.scale=0"], config_dir=str(extended)))


def test_new_task_runs_with_an_existing_method(extended, tmp_path):
    metrics = _run(extended, tmp_path / "t", "task=colours", "method=bm25", "task.n_train=24")
    assert metrics["num_train"] == 24 and metrics["num_queries"] == 1
    top = json.loads((tmp_path / "t" / "topk.jsonl").read_text().splitlines()[0])["top"]
    assert {t["text"].split()[1] for t in top[:4]} <= {"red", "blue"}  # BM25 finds the colour words


def test_new_stage_runs_on_any_task(extended, tmp_path):
    metrics = _run(extended, tmp_path / "s", "stage=count", "stage.scale=3", "task=colours", "method=coin")
    assert metrics["rows"] == 90
    assert json.loads((tmp_path / "s" / "metrics.json").read_text())["rows"] == 90
