"""Your own data: task=custom runs a real pretrained model unless told otherwise, prints BM25's agreement
as a sanity line, and the shipped example pool (examples/topics) gives the P@10 its documentation states."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from rise_exp.cli import run
from rise_exp.run.config import compose

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "topics"
TOPICS = ("gardening", "astronomy", "tax", "chess")
#: BM25's P@10 per query set on the example pool, as docs/own-data.md states.
BM25_P10 = {"gardening": 1.0, "astronomy": 0.9, "tax": 0.76, "chess": 0.6}
TINY = ["model.layers=1", "model.hidden_size=32", "model.heads=2", "model.intermediate_size=64"]
TINY += ["model.vocab_size=300", "finetune.epochs=1", "method.kr=32", "method.kh=32", "method.kg=16"]


def _example(topic: str) -> list[str]:
    pool, queries = EXAMPLE / "pool.jsonl", EXAMPLE / f"queries_{topic}.jsonl"
    return ["task=custom", f"task.train_path={pool}", f"task.queries_path={queries}", f"+task.fields.label={topic}"]


@pytest.mark.parametrize(
    "overrides, model, lora",
    [
        (["task=custom", "task.train_path=p.jsonl"], "smollm2-135m", True),
        (["task=custom", "task.train_path=p.jsonl", "model=tiny-pythia"], "tiny-pythia", False),
        (["task=custom", "task.train_path=p.jsonl", "model=pythia-70m"], "pythia-70m", False),
        (["task=custom", "task.train_path=p.jsonl", "finetune=none"], "smollm2-135m", False),
        ([], "tiny-pythia", False),  # the default run keeps the embedded model
    ],
)
def test_custom_data_gets_a_real_model_unless_told_otherwise(overrides, model, lora):
    cfg = compose(overrides)
    assert cfg.model.name == model and bool(cfg.finetune.lora) == lora


def test_the_example_pool_is_what_make_pool_writes(tmp_path, monkeypatch):
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_pool", EXAMPLE / "make_pool.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "HERE", tmp_path)
    module.main()
    for name in ["pool.jsonl", *(f"queries_{t}.jsonl" for t in TOPICS)]:
        assert (tmp_path / name).read_text() == (EXAMPLE / name).read_text(), name
    rows = [json.loads(x) for x in (EXAMPLE / "pool.jsonl").read_text().splitlines()]
    assert len(rows) == 240 and all(sum(r[t] for t in TOPICS) == 1 and r[r["topic"]] == 1 for r in rows)


@pytest.mark.parametrize("topic", TOPICS)
def test_bm25_on_the_example_pool_gives_the_documented_p10(topic, tmp_path):
    metrics = run(compose([*_example(topic), "method=bm25", "model=tiny-pythia", "logger=none"]), tmp_path)
    assert metrics["num_train"] == 240 and metrics["num_positive"] == 60
    assert metrics["p@10"] == pytest.approx(BM25_P10[topic])


def test_the_sanity_line_reports_bm25_beside_the_method(tmp_path, monkeypatch, caplog):
    """RISE on the embedded model over a 60-row slice of the example pool: BM25's P@10 in the sanity line
    equals a BM25 run's own P@10 on the same slice, and the overlap is that of the two topk.jsonl files."""
    monkeypatch.setenv("RISE_EXP_CACHE", str(tmp_path / "cache"))
    common = [*_example("gardening"), "task.max_train=60", "model=tiny-pythia", "logger=none", "stage.write_topk=10"]
    with caplog.at_level(logging.INFO):
        rise = run(compose([*common, *TINY]), tmp_path / "rise")
    bm25 = run(compose([*common, "method=bm25"]), tmp_path / "bm25")
    assert rise["bm25_p@10"] == pytest.approx(bm25["p@10"]) and "bm25_p@10" not in bm25

    def tops(d: Path) -> list[set[str]]:
        return [{t["id"] for t in json.loads(x)["top"]} for x in (d / "topk.jsonl").read_text().splitlines()]

    overlap = sum(len(a & b) / 10 for a, b in zip(tops(tmp_path / "rise"), tops(tmp_path / "bm25"))) / 5
    assert rise["bm25_overlap@10"] == pytest.approx(overlap)
    line = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("sanity:"))
    assert f"P@10: rise {rise['p@10']:.2f}, BM25 {bm25['p@10']:.2f}" in line
