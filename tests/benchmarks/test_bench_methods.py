"""Plumbing of benchmarks/bench_methods.py on a very small configuration (nothing here is timed)."""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys

import numpy as np
import pytest

from rise_exp.core.errors import ConfigError
from rise_exp.data.records import Record
from tests.helpers import ROOT

SCRIPT = ROOT / "benchmarks" / "bench_methods.py"


def _load():
    spec = importlib.util.spec_from_file_location("bench_methods", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["bench_methods"] = mod
    spec.loader.exec_module(mod)
    return mod


bench = _load()


def test_timed_queries_repeat_the_distinct_ones_cyclically_with_fresh_ids():
    qs = [Record(id=f"q{i}", instruction=f"question {i}", output="a") for i in range(3)]
    out, note = bench.timed_queries(qs, 7)
    assert [q.id for q in out] == ["q0", "q1", "q2", "q0#rep1", "q1#rep1", "q2#rep1", "q0#rep2"]
    assert [q.instruction for q in out] == [f"question {i}" for i in (0, 1, 2, 0, 1, 2, 0)]
    assert "3 distinct" in note and "repeated" in note
    out, note = bench.timed_queries(qs, 2)
    assert [q.id for q in out] == ["q0", "q1"] and "repeated" not in note
    with pytest.raises(ConfigError, match="--queries"):
        bench.timed_queries(qs, 0)


def test_query_count_caps_only_the_default_synthetic_howdy_task():
    assert bench.query_count(100, []) == 56
    assert bench.query_count(20, ["model.layers=1"]) == 20
    assert bench.query_count(100, ["task=brain_rot"]) == 100
    assert bench.query_count(100, ["task.n_queries=30"]) == 100  # the explicit override wins in compose


def test_overrides_split_into_common_and_per_method():
    common, per = bench.split_overrides(
        ["model.layers=1", "rapidin:method.k=4096", "task.train_path=/a:b", "rise:method.kr=32"]
    )
    assert common == ["model.layers=1", "task.train_path=/a:b"]
    assert per["rapidin"] == ["method.k=4096"] and per["rise"] == ["method.kr=32"] and per["bm25"] == []
    with pytest.raises(ConfigError, match="allowed values: bm25, ekfac, rapidin, rise, stride, trackstar, zo_inf"):
        bench.split_overrides(["rapid:method.k=1"])
    assert bench.parse_methods(" rise, bm25 ") == ["rise", "bm25"]
    with pytest.raises(ConfigError, match="--methods"):
        bench.parse_methods("rise,tracin")


def test_paper_storage_matches_the_hand_computed_sizes():
    s = bench.paper_storage()
    assert s["rise_bytes"] == (128 * 128 + 64 * 128) * 2 == 49152
    by = {r["what"].split(" (")[0]: r for r in s["rows"]}
    assert by["RapidIn K=65536 float16"]["bytes_per_row"] == 65536 * 2
    assert math.isclose(by["RapidIn K=65536 float16"]["ratio_vs_rise"], 8 / 3)
    assert math.isclose(by["RapidIn K=65536 float32"]["ratio_vs_rise"], 16 / 3)
    assert math.isclose(s["rise_dims_for_claim"], 131072 / 112 / 2)
    text = "\n".join(bench.storage_lines(s))
    assert "2.67x" in text and "5.33x" in text and "112x" in text


def test_table_has_the_columns_and_marks_failed_methods():
    ok = {
        "method": "bm25",
        "build_s": 0.5,
        "bytes_per_row": 176.5,
        "peak_rss_mb": 430.0,
        "rss_over_base_mb": 1.0,
        "query_s_per_100": 0.01,
        "auprc@10": 0.25,
    }
    bad = bench.failed_record("rapidin", "boom", "tiny-pythia", 10)
    lines = bench.format_table([ok, bad]).splitlines()
    assert [c.strip() for c in lines[0].split("|")[1:-1]] == list(bench.TABLE_COLUMNS)
    assert "bm25" in lines[2] and "176.50" in lines[2] and "0.25" in lines[2]
    assert "rapidin" in lines[3] and lines[3].count("failed") == len(bench.TABLE_COLUMNS) - 1


def test_peak_rss_starts_afresh_in_a_subprocess():
    """ru_maxrss would carry the parent's peak into an exec'd child; the reported peak must not."""
    big = np.ones(300 * 2**20 // 8)  # this process now peaks above 300 MiB
    assert bench.peak_rss_mb() > 300
    code = (
        "import importlib.util, sys; s = importlib.util.spec_from_file_location('b', sys.argv[1]); "
        "m = importlib.util.module_from_spec(s); s.loader.exec_module(m); before = m.peak_rss_mb(); "
        "import numpy as np; x = np.ones(200 * 2**20 // 8); print(before, m.peak_rss_mb())"
    )
    out = subprocess.run([sys.executable, "-c", code, str(SCRIPT)], capture_output=True, text=True, check=True)
    before, after = map(float, out.stdout.split())
    assert before < bench.peak_rss_mb() - 100  # not the parent's peak
    assert after - before > 150  # sees its own 200 MiB
    del big


def test_bad_arguments_exit_with_one_line(capsys):
    with pytest.raises(SystemExit) as e:
        bench.main(["--methods", "rise,tracin"])
    assert e.value.code == 2
    assert "tracin" in capsys.readouterr().err


def test_end_to_end_bm25_record_matches_a_direct_run(tmp_path, monkeypatch):
    """Subprocess, query repetition and JSON: the record equals BM25 run directly through the pipeline."""
    from rise_exp.retrieval.metrics import retrieval_metrics
    from rise_exp.run.pipeline import prepare
    from rise_exp.run.runner import build_on

    monkeypatch.setenv("RISE_EXP_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "out.json"
    result = bench.main(
        [
            "--methods",
            "bm25",
            "--n-train",
            "24",
            "--queries",
            "60",
            "--json",
            str(out),
            "--work-dir",
            str(tmp_path / "work"),
            "task.seed=3",
        ]
    )
    records = json.loads(out.read_text())
    assert len(records) == 1 and records == json.loads(json.dumps(result["records"]))
    r = records[0]
    assert set(bench.RECORD_KEYS) <= set(r)
    assert (r["method"], r["model"], r["n_train"], r["n_queries"], r["queries_timed"]) == (
        "bm25",
        "tiny-pythia",
        24,
        56,
        60,
    )
    assert math.isclose(r["bytes_per_row"], r["index_bytes"] / 24) and r["index_bytes"] > 0
    assert r["peak_rss_mb"] >= r["rss_over_base_mb"] >= 0 and r["build_s"] > 0 and r["query_s_per_100"] > 0

    cfg = bench.compose_config("bm25", 24, 56, ["task.seed=3"])
    prep = prepare(cfg, tmp_path / "ref", need_model=False)
    method = build_on(cfg.method, prep.ctx, prep.task.train).method
    scores = method.score(prep.task.queries)
    assert method.index_bytes == r["index_bytes"]
    assert math.isclose(retrieval_metrics(scores, prep.task.labels, ks=(10,))["auprc@10"], r["auprc@10"], rel_tol=1e-9)


def test_signature_dim_by_fusion():
    assert bench.rise_signature_dim(128, 128, 64, "rh+gh") == 128 * 128 + 64 * 128
    assert bench.rise_signature_dim(4, 3, 2, "rh+gh+rg") == 12 + 6 + 8
    assert bench.rise_signature_dim(4, 3, 2, "gh") == 6
    with pytest.raises(ConfigError, match="fusion"):
        bench.rise_signature_dim(4, 3, 2, "rh+xx")
