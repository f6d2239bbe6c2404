"""task=custom: the user's own pool and queries, with or without labels; run directories named after the data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rise_exp.core.errors import ConfigError, DataError
from rise_exp.data.task_builders import build_task
from tests.helpers import run_cli


def _jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


POOL = [
    {"id": f"r{i}", "text": t}
    for i, t in enumerate(
        [
            "the cat sat on the mat",
            "dogs bark at night",
            "the stock market fell",
            "interest rates rose",
            "a cat and a dog",
        ]
    )
]


def test_unlabelled_pool_with_inline_queries(tmp_path):
    pool = _jsonl(tmp_path / "my pool.jsonl", POOL)
    task = build_task({"name": "custom", "train_path": pool, "query_texts": ["the cat", "rates"]})
    assert not task.labelled and task.labels is None and task.candidate_labels() is None
    assert [q.text for q in task.queries] == ["the cat", "rates"] and task.title == "my pool"


def test_labels_all_or_none(tmp_path):
    labelled = _jsonl(tmp_path / "l.jsonl", [{**r, "good": int(i % 2)} for i, r in enumerate(POOL)])
    task = build_task(
        {"name": "custom", "train_path": labelled, "query_texts": ["cat"], "fields": {"label": "good"}, "title": "pets"}
    )
    assert task.labels.tolist() == [0, 1, 0, 1, 0] and task.title == "pets"
    partial = _jsonl(tmp_path / "p.jsonl", [{**r, "label": 1} if i == 0 else r for i, r in enumerate(POOL)])
    with pytest.raises(DataError, match="4 pool rows have no label.*'r1'"):
        build_task({"name": "custom", "train_path": partial, "query_texts": ["cat"]})
    from rise_exp.run.config import RunConfig, compose

    with pytest.raises(ConfigError, match="stage attribute needs queries: set task.queries_path or task.query_texts"):
        RunConfig.from_cfg(compose(["task=custom", f"task.train_path={labelled}"]))
    RunConfig.from_cfg(compose(["task=custom", f"task.train_path={labelled}", "stage=query", "stage.query_texts=[q]"]))


def test_cli_on_unlabelled_data_writes_rankings_and_names_the_run_after_the_data(tmp_path):
    pool = _jsonl(tmp_path / "notes.jsonl", POOL)
    res = run_cli(
        "task=custom",
        "model=tiny-pythia",
        f"task.train_path={pool}",
        "task.query_texts=[the cat]",
        "method=bm25",
        "logger=none",
        cache=tmp_path / "cache",
        cwd=tmp_path,  # outputs/ lands here
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    (run,) = (tmp_path / "outputs" / "attribute" / "notes" / "bm25" / "tiny-pythia").iterdir()
    assert "no labels: writing rankings only" in res.stdout + res.stderr
    metrics = json.loads((run / "metrics.json").read_text())
    assert "auprc@10" not in metrics and metrics["num_train"] == 5
    top = json.loads((run / "topk.jsonl").read_text())["top"]
    assert top[0]["label"] is None and "cat" in top[0]["text"]
    assert "bm25 on notes" in res.stdout


def test_a_labelled_pool_without_positives_warns_instead_of_scoring_zero(tmp_path):
    pool = _jsonl(tmp_path / "neg.jsonl", [{**r, "label": 0} for r in POOL])
    res = run_cli(
        "task=custom",
        "model=tiny-pythia",
        f"task.train_path={pool}",
        "task.query_texts=[cat]",
        "method=bm25",
        "logger=none",
        f"hydra.run.dir={tmp_path}/r",
        cache=tmp_path / "cache",
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert "no training row has label 1" in res.stdout + res.stderr
    assert "auprc@10" not in json.loads((tmp_path / "r" / "metrics.json").read_text())
