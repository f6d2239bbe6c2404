"""Runs that answer from an index are named by what the index holds (method, data, model) in their
directory and config.yaml, and every ranking stage writes one topk.jsonl / selection.jsonl schema."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from rise_exp.cli import run
from rise_exp.index.run_names import index_run_names, recorded_config
from rise_exp.run.config import compose
from rise_exp.run.rankings import SELECTION_FIELDS, TOP_FIELDS, read_topk

ROOT = Path(__file__).resolve().parents[2]
ROWS = [
    {"id": "g1", "text": "water tomato plants deeply twice a week in summer", "label": 1},
    {"id": "g2", "text": "prune tomato plants and water the garden soil", "label": 1},
    {"id": "a1", "text": "the telescope shows the rings of saturn at night", "label": 0},
    {"id": "a2", "text": "a galaxy holds billions of stars and planets", "label": 0},
]


@pytest.fixture(scope="module")
def bm25_index(tmp_path_factory):
    """A BM25 index of a labelled four-row custom pool called ``garden``, built by an attribute run."""
    root = tmp_path_factory.mktemp("names")
    pool = root / "garden.jsonl"
    pool.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    cache = root / "cache"
    mp = pytest.MonkeyPatch()
    mp.setenv("RISE_EXP_CACHE", str(cache))
    args = ["task=custom", f"task.train_path={pool}", "method=bm25", "model=tiny-pythia", "logger=none"]
    metrics = run(compose([*args, "task.query_texts=[how often to water tomato plants]", "stage.ks=[1]"]), root / "a")
    yield {"root": root, "pool": pool, "index": metrics["index"], "attribute": root / "a"}
    mp.undo()


def test_the_manifest_names_the_building_run(bm25_index):
    assert index_run_names(bm25_index["index"]) == {
        "method": "bm25",
        "task": "custom",
        "data": "garden",
        "model": "tiny-pythia",
    }


def test_an_old_manifest_is_named_from_its_directory(tmp_path):
    old = tmp_path / "pool-rise-0123456789ab"
    old.mkdir()
    (old / "manifest.json").write_text(json.dumps({"method": {"name": "rise", "kr": 32}, "serving": {}}))
    assert index_run_names(old) == {"method": "rise", "task": "index", "data": "pool", "model": "index"}
    config = recorded_config({"method": {"name": "bm25"}, "task": {"name": "howdy"}, "seed": 1}, old)
    assert config["method"] == {"name": "rise", "kr": 32} and config["task"] == {"name": "index", "title": "pool"}
    assert config["seed"] == 1


def test_a_query_run_from_an_index_is_named_by_it(bm25_index, tmp_path):
    """The CLI, started as the task=howdy / method=rise / tiny-pythia default, lands under the index's names."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RISE_EXP_PROGRESS": "0", "WANDB_MODE": "disabled"}
    args = ["stage=query", f"stage.index={bm25_index['index']}", "stage.query_texts=[saturn rings]", "logger=none"]
    done = subprocess.run(
        [sys.executable, "-m", "rise_exp", *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    (run_dir,) = (tmp_path / "outputs" / "query").glob("*/*/*/*")
    assert run_dir.relative_to(tmp_path / "outputs" / "query").parts[:3] == ("garden", "bm25", "tiny-pythia")
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["method"]["name"] == "bm25" and config["task"] == {"name": "custom", "title": "garden"}
    assert config["model"]["name"] == "tiny-pythia" and config["stage"]["name"] == "query"
    (line,) = read_topk(run_dir / "topk.jsonl")
    assert line["top"][0]["id"] == "a1" and line["top"][0]["text"].startswith("the telescope")
    assert all(tuple(t) == TOP_FIELDS for t in line["top"])


def test_attribute_and_query_share_the_topk_schema(bm25_index, tmp_path):
    (attr,) = read_topk(bm25_index["attribute"] / "topk.jsonl")
    assert [tuple(t) for t in attr["top"]] == [TOP_FIELDS] * 4
    best = attr["top"][0]
    assert best["rank"] == 1 and best["label"] == 1 and best["id"] in ("g1", "g2")
    assert (best["id"], best["text"]) == (ROWS[best["row"]]["id"], ROWS[best["row"]]["text"])
    run(compose(["stage=query", f"stage.index={bm25_index['index']}", "stage.query_texts=[galaxy stars]"]), tmp_path)
    (q,) = read_topk(tmp_path / "topk.jsonl")
    assert q["top"][0]["id"] == "a2" and q["top"][0]["label"] is None and tuple(q["top"][0]) == TOP_FIELDS


def test_valuate_and_select_share_the_selection_schema(bm25_index, tmp_path):
    common = [f"stage.index={bm25_index['index']}", "stage.query_texts=[tomato plants]", "logger=none"]
    run(compose(["stage=valuate", *common]), tmp_path / "v")
    run(compose(["stage=select", *common, f"stage.pool_path={bm25_index['pool']}", "stage.count=2"]), tmp_path / "s")
    for path in (tmp_path / "v" / "selection.jsonl", tmp_path / "s" / "selection.jsonl"):
        rows = [json.loads(x) for x in path.read_text().splitlines()]
        assert all(tuple(r) == SELECTION_FIELDS for r in rows)
        assert {rows[0]["id"], rows[1]["id"]} == {"g1", "g2"}
    chosen = [json.loads(x) for x in (tmp_path / "s" / "selection.jsonl").read_text().splitlines()]
    assert [r["label"] for r in chosen] == [1, 1]
