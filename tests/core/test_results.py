"""core/results.py: metrics written atomically with NaN and infinities as null, earlier results set aside as
``*.stale``, and the console tables."""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest

from rise_exp.core import results
from rise_exp.core.results import MAIN_KEYS, STALE_SUFFIX, print_files, print_metrics, retire_results, write_json


def test_write_json_turns_non_finite_numbers_into_null_and_numpy_scalars_into_numbers(tmp_path):
    path = tmp_path / "metrics.json"
    write_json(path, {"nan": float("nan"), "inf": -math.inf, "np": np.float32(0.5), "n": np.int64(3), "s": "x"})
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text and text.endswith("\n")
    assert json.loads(text) == {"nan": None, "inf": None, "np": 0.5, "n": 3, "s": "x"}
    assert list(json.loads(text)) == sorted(json.loads(text))  # keys sorted: diffable runs


def test_write_json_replaces_the_file_atomically(tmp_path, monkeypatch):
    path = tmp_path / "metrics.json"
    write_json(path, {"a": 1})
    replaced = []
    real = os.replace
    monkeypatch.setattr(results.os, "replace", lambda src, dst: replaced.append((str(src), str(dst))) or real(src, dst))
    write_json(path, {"a": 2})
    assert replaced == [(str(path) + ".tmp", str(path))]  # written beside it, then renamed over it
    assert json.loads(path.read_text()) == {"a": 2} and not (tmp_path / "metrics.json.tmp").exists()

    def crash(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(results.os, "replace", crash)
    with pytest.raises(OSError):
        write_json(path, {"a": 3})
    assert json.loads(path.read_text()) == {"a": 2}  # a failed write leaves the old file whole


def test_retire_results_renames_every_result_file_and_nothing_else(tmp_path):
    names = ["metrics.json", "members.csv", "scores.npy", "topk.jsonl", "values.npy", "values_mean.npy"]
    names += ["selection.jsonl", "selections.jsonl"]
    for name in [*names, "config.yaml", "status.json", "notes.txt"]:
        (tmp_path / name).write_text(name)
    (tmp_path / "values_dir.npy").mkdir()  # a directory matching a pattern is not a result file
    moved = retire_results(tmp_path)
    assert sorted(moved) == sorted(names)
    for name in names:
        assert not (tmp_path / name).exists() and (tmp_path / f"{name}{STALE_SUFFIX}").read_text() == name
    for kept in ("config.yaml", "status.json", "notes.txt"):
        assert (tmp_path / kept).read_text() == kept
    assert (tmp_path / "values_dir.npy").is_dir()
    assert retire_results(tmp_path) == []  # nothing left to set aside
    (tmp_path / "metrics.json").write_text("newer")
    assert retire_results(tmp_path) == ["metrics.json"]  # a second retirement overwrites the older stale copy
    assert (tmp_path / "metrics.json.stale").read_text() == "newer"


def test_print_metrics_shows_the_headline_then_the_costs(capsys):
    metrics = {"auprc@10": 0.25, "index_seconds": 1.5, "num_train": 48, "p@10": 0.5, "other": 9}
    print_metrics(metrics, "rise on howdy")
    out = capsys.readouterr().out
    assert "rise on howdy" in out and "0.2500" in out and "1.5000" in out
    assert out.index("auprc@10") < out.index("p@10") < out.index("index_seconds")
    assert "other" not in out and "num_train" not in out  # the rest stays in metrics.json
    print_metrics(metrics, "t", headline=["num_train"])
    out = capsys.readouterr().out
    assert "48" in out and "auprc@10" not in out
    assert "auprc@10" in MAIN_KEYS


def test_print_files_lists_what_exists_and_how_to_ask_the_index_again(tmp_path, capsys):
    (tmp_path / "metrics.json").write_text("{}")
    print_files(tmp_path, ["metrics.json", "scores.npy"], index="/cache/indexes/x")
    out = capsys.readouterr().out
    assert str(tmp_path) in out and "wrote: metrics.json" in out and "scores.npy" not in out
    assert "stage=query stage.index=/cache/indexes/x" in out
