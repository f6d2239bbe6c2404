"""The command line: the default pipeline writes its files; user errors are one clear line."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests import helpers
from tests.helpers import RETRIEVAL_FIELDS, ROOT


def run_cli(tmp_path: Path, *overrides: str) -> subprocess.CompletedProcess:
    """The command line with its run directory and cache in ``tmp_path``."""
    return helpers.run_cli(f"hydra.run.dir={tmp_path / 'run'}", *overrides, cache=tmp_path / "cache")


def test_bm25_pipeline_writes_metrics_topk_and_config(tmp_path):
    res = run_cli(tmp_path, "method=bm25", "logger=wandb", "task.n_train=120", "task.n_queries=6")
    assert res.returncode == 0, res.stderr[-3000:]
    run = tmp_path / "run"
    metrics = json.loads((run / "metrics.json").read_text())
    for key in sorted(RETRIEVAL_FIELDS):
        assert key in metrics, key
    assert metrics["num_train"] == 120 and metrics["num_queries"] == 6
    top = [json.loads(line) for line in (run / "topk.jsonl").read_text().splitlines()]
    assert len(top) == 6 and len(top[0]["top"]) == 10
    assert [t["rank"] for t in top[0]["top"]] == list(range(1, 11))
    scores = [t["score"] for t in top[0]["top"]]
    assert scores == sorted(scores, reverse=True)
    assert "method:" in (run / "config.yaml").read_text()
    assert json.loads((run / "status.json").read_text())["status"] == "ok"
    assert list((run / "wandb").glob("offline-run-*")), "W&B offline run missing"
    assert (run / "csv" / "attribute" / "metrics.csv").exists()


def test_malformed_jsonl_is_one_clear_line(tmp_path):
    bad = tmp_path / "pool.jsonl"
    bad.write_text('{"id": "a", "instruction": "hi", "output": "there"}\n{"id": "b", "instruction": \n')
    res = run_cli(
        tmp_path,
        "method=bm25",
        "logger=none",
        "task.source=local",
        f"task.train_path={bad}",
        f"task.queries_path={bad}",
    )
    assert res.returncode == 2
    assert f"{bad}:2" in res.stderr
    assert "Traceback" not in res.stderr
    assert json.loads((tmp_path / "run" / "status.json").read_text())["status"] == "failed"


def test_unknown_method_lists_the_allowed_ones(tmp_path):
    res = run_cli(tmp_path, "method=nope")
    assert res.returncode != 0
    assert "nope" in res.stderr and "bm25" in res.stderr and "rise" in res.stderr
    assert "Traceback" not in res.stderr


def test_a_bad_setting_fails_before_any_work(tmp_path):
    res = run_cli(tmp_path, "method.kr=0")
    assert res.returncode == 2
    assert res.stderr.strip().splitlines()[-1] == "error: method.kr must be > 0, got 0"
    assert "Traceback" not in res.stderr
    assert not (tmp_path / "cache").exists()  # no tokenizer, model or finetune was built


def test_unknown_group_option_and_unknown_key_are_one_line_exit_2(tmp_path):
    res = run_cli(tmp_path, "model=nope")
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [
        "error: unknown model 'nope'; allowed values: "
        + ", ".join(sorted(p.stem for p in (ROOT / "conf" / "model").glob("*.yaml")))
    ]
    res = run_cli(tmp_path, "method.kr2=3")
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1
    assert "method.kr2" in res.stderr
    res = run_cli(tmp_path, "method.kr=abc")
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1
    assert "method.kr" in res.stderr and "abc" in res.stderr


def test_help_starts_with_what_the_tool_does():
    res = helpers.run_cli("--help")
    assert res.returncode == 0
    first = res.stdout.splitlines()[0]
    assert first.startswith("rise-exp: training-data attribution")
    assert "Stages (stage=<name>):" in res.stdout and "Examples:" in res.stdout
    assert "  method      bm25, ekfac, rapidin, rise, stride, trackstar, zo_inf" in res.stdout
    assert "schema" not in res.stdout
