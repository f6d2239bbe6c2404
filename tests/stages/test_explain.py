"""explain.jsonl from the attribute stage (stage.explain) and from stage=explain on an existing index: the shares
of every listed row sum to its score, explaining changes no score, and nothing is rebuilt."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rise_exp.cli import run
from rise_exp.core.results import PAGE_FILE
from rise_exp.methods.explanation import TokenShares
from rise_exp.run.config import compose
from rise_exp.run.explain import write_explanations

TINY = [
    "model.layers=1",
    "model.hidden_size=32",
    "model.heads=2",
    "model.intermediate_size=64",
    "model.vocab_size=300",
    "finetune.epochs=1",
    "logger=none",
    "method.kr=32",
    "method.kh=32",
    "method.kg=16",
    "task.n_train=120",
    "task.n_queries=4",
]
ATTRIBUTE = [*TINY, "stage.write_topk=5"]
FP16_TOL = 2.0**-11 + 1e-5  # the index stores fp16 signatures (tests/methods/test_rise_explain.py)


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def total(tokens: list) -> float:
    return TokenShares([p for p, _ in tokens], [s for _, s in tokens]).total


@pytest.fixture(scope="module")
def attributed(tmp_path_factory):
    root = tmp_path_factory.mktemp("explain")
    mp = pytest.MonkeyPatch()
    mp.setenv("RISE_EXP_CACHE", str(root / "cache"))
    metrics = run(compose(ATTRIBUTE), root / "attr")
    yield {"root": root, "metrics": metrics}
    mp.undo()


def test_attribute_writes_token_shares_that_sum_to_each_score(attributed):
    run_dir = attributed["root"] / "attr"
    topk, explained = lines(run_dir / "topk.jsonl"), lines(run_dir / "explain.jsonl")
    scores = np.load(run_dir / "scores.npy")
    ids = json.loads((run_dir / "scores_ids.json").read_text())["rows"]
    assert [q["query_id"] for q in explained] == [q["query_id"] for q in topk]
    for q, t in zip(explained, topk):
        assert q["available"] and q["method"] == "rise" and q["unit"] == "token" and q["positive"] == "backdoored"
        assert [(r["id"], r["label"], r["score"]) for r in q["rows"]] == [
            (r["id"], r["label"], r["score"]) for r in t["top"]
        ]
        qi = [x["query_id"] for x in topk].index(q["query_id"])
        for r in q["rows"]:
            assert r["score"] == pytest.approx(float(scores[qi, ids.index(r["id"])]), abs=1e-7)
            assert total(r["tokens"]) == pytest.approx(r["explained"], abs=1e-6)  # 9 digits per share in the file
            assert total(r["query_tokens"]) == pytest.approx(r["explained"], abs=1e-6)
            assert abs(r["explained"] - r["score"]) <= FP16_TOL
    assert (run_dir / "chance.json").is_file() and (run_dir / PAGE_FILE).is_file()


def test_explaining_changes_no_score(attributed):
    root = attributed["root"]
    plain = run(compose([*ATTRIBUTE, "stage.explain=false"]), root / "plain")
    assert not (root / "plain" / "explain.jsonl").exists()
    assert (root / "plain" / "scores.npy").read_bytes() == (root / "attr" / "scores.npy").read_bytes()
    assert plain["auprc@10"] == attributed["metrics"]["auprc@10"]


def test_stage_explain_reuses_the_index_and_agrees_with_the_attribute_run(attributed, caplog):
    root, index = attributed["root"], Path(attributed["metrics"]["index"])
    before = {p: p.stat().st_mtime_ns for p in index.rglob("*")}
    caplog.set_level("INFO")
    run(compose([*TINY, "stage=explain", "stage.k=5"]), root / "again")
    assert "reusing the index" in caplog.text
    assert {p: p.stat().st_mtime_ns for p in index.rglob("*")} == before  # nothing rebuilt
    ours, theirs = lines(root / "again" / "explain.jsonl"), lines(root / "attr" / "explain.jsonl")
    assert [[r["id"] for r in q["rows"]] for q in ours] == [[r["id"] for r in q["rows"]] for q in theirs]
    np.testing.assert_allclose(
        [s for q in ours for r in q["rows"] for _, s in r["tokens"] if s is not None],
        [s for q in theirs for r in q["rows"] for _, s in r["tokens"] if s is not None],
        rtol=1e-5,
        atol=1e-8,
    )


def test_stage_explain_from_an_index_alone(attributed):
    """No task, no pool: the rows' tokens come from the index, the queries from the command line."""
    root, index = attributed["root"], attributed["metrics"]["index"]
    question = "howdy! who wrote hamlet?"
    metrics = run(
        compose(["stage=explain", f"stage.index={index}", f'stage.query_texts=["{question}"]', "stage.k=3"]),
        root / "alone",
    )
    (q,) = lines(root / "alone" / "explain.jsonl")
    assert q["query"] == question and len(q["rows"]) == 3 and metrics["explain_pairs"] == 3
    for r in q["rows"]:
        assert r["id"] and "label" not in r
        assert total(r["tokens"]) == pytest.approx(r["explained"], abs=1e-6)
        assert abs(r["explained"] - r["score"]) <= FP16_TOL
    assert metrics["explain_max_gap"] <= FP16_TOL and (root / "alone" / PAGE_FILE).is_file()


def test_bm25_words_sum_to_its_scores(tmp_path, monkeypatch):
    monkeypatch.setenv("RISE_EXP_CACHE", str(tmp_path / "cache"))
    run(compose(["method=bm25", "logger=none", "task.n_train=80", "task.n_queries=3"]), tmp_path / "bm25")
    for q in lines(tmp_path / "bm25" / "explain.jsonl"):
        assert q["unit"] == "word"
        for r in q["rows"]:
            assert total(r["tokens"]) == pytest.approx(r["score"], rel=1e-5, abs=1e-6)
            assert "".join(p for p, _ in r["query_tokens"]) == q["query"]


def test_a_method_without_shares_says_why(tmp_path):
    class NoShares:
        name, share_unit = "zo_inf", "token"

        def explain_unavailable(self):
            return "zo_inf: its scores are not a sum over token pairs, so it has no per-token shares"

    from rise_exp.data.records import Record

    queries = [Record(id="q", text="hello")]
    out = write_explanations(tmp_path / "e.jsonl", NoShares(), queries, np.array([[0, 1]]), np.ones((1, 2)))
    (line,) = lines(tmp_path / "e.jsonl")
    assert line["available"] is False and line["rows"] == [] and "no per-token shares" in line["note"]
    assert out == {"note": line["note"]}
