"""Every method runs on every task through the same pipeline and writes the same metrics fields."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from rise_exp.cli import run
from rise_exp.core.errors import ConfigError
from rise_exp.run.config import compose
from tests.helpers import RETRIEVAL_FIELDS, tiny_run

TINY = tiny_run("finetune.max_tokens_per_batch=2048", epochs=2)
SIZES = {
    "howdy": ["task.n_train=48", "task.n_queries=4"],
    "finance_medical": ["task.n_train=48", "task.n_queries=4"],
    "brain_rot": ["task.n_train=48", "task.n_queries=4", "task.n_heldout=4"],
}
METHOD_TINY = {
    "rapidin": ["method.k=4096"],
    "stride": ["method.steps=10", "method.max_subsets=16", "method.subsets_per_example=2"],
    "rise": ["method.kr=32", "method.kh=32", "method.kg=16"],
    "zo_inf": [],
    "bm25": [],
}


def compose_run(overrides: list[str]):
    return compose(overrides)


@pytest.fixture()
def cache(tmp_path_factory, monkeypatch):
    root = tmp_path_factory.getbasetemp() / "protocol-cache"  # shared: one tiny model per task
    monkeypatch.setenv("RISE_EXP_CACHE", str(root))
    return root


@pytest.mark.parametrize("task", ["howdy", "finance_medical", "brain_rot"])
@pytest.mark.parametrize("method", ["rise", "bm25", "rapidin", "zo_inf", "stride"])
def test_method_runs_on_task_and_writes_the_protocol_fields(tmp_path, cache, task, method):
    cfg = compose_run([f"task={task}", f"method={method}", *TINY, *SIZES[task], *METHOD_TINY[method]])
    metrics = run(cfg, tmp_path)
    on_disk = json.loads((tmp_path / "metrics.json").read_text())
    assert RETRIEVAL_FIELDS <= set(on_disk)
    assert on_disk["num_train"] == 48 and on_disk["num_queries"] == 4
    for k in ("auprc@5", "auprc@10", "p@10"):
        assert 0.0 <= on_disk[k] <= 1.0
    assert metrics["index_bytes"] > 0
    scores = np.load(tmp_path / "scores.npy")
    assert scores.shape == (4, 48) and np.isfinite(scores).all()
    assert len((tmp_path / "topk.jsonl").read_text().splitlines()) == 4


@pytest.mark.parametrize("method", ["rise", "bm25"])
def test_valuate_stage_writes_a_ranked_selection(tmp_path, cache, method):
    cfg = compose_run(
        ["stage=valuate", "task=brain_rot", f"method={method}", *TINY, *SIZES["brain_rot"], *METHOD_TINY[method]]
    )
    metrics = run(cfg, tmp_path)
    for k in ("auprc", "auroc", "p@10%", "p@25%", "num_candidates"):
        assert k in metrics
    rows = [json.loads(line) for line in (tmp_path / "selection.jsonl").read_text().splitlines()]
    assert len(rows) == 48 and [r["rank"] for r in rows] == list(range(1, 49))
    values = [r["value"] for r in rows]
    assert values == sorted(values, reverse=True)
    assert sorted(r["row"] for r in rows) == list(range(48))
    assert np.allclose(np.load(tmp_path / "values.npy")[[r["row"] for r in rows]], values, atol=1e-6)


@pytest.mark.parametrize("method", ["rise", "bm25"])
def test_streamed_topk_scores_give_the_dense_metrics_and_rankings(tmp_path, cache, method):
    """stage.scores=topk (top / bottom K rows only, streamed over the index) equals the dense protocol."""
    base = ["task=howdy", f"method={method}", *TINY, *SIZES["howdy"], *METHOD_TINY[method], "stage.ks=[5,10,30]"]
    dense = run(compose_run([*base, "stage.scores=dense"]), tmp_path / "dense")
    ranked = run(compose_run([*base, "stage.scores=auto", "stage.dense_max_cells=1"]), tmp_path / "topk")
    assert dense["scores"] == "dense" and ranked["scores"] == "topk"
    assert not (tmp_path / "topk" / "scores.npy").exists()
    for key in ("auprc@5", "auprc@10", "auprc@30", "auroc@10", "auroc@30", "p@10", "p@30"):
        assert ranked[key] == pytest.approx(dense[key], rel=1e-6, abs=1e-9), key
    tops = [
        [json.loads(line)["top"] for line in (tmp_path / d / "topk.jsonl").read_text().splitlines()]
        for d in ("dense", "topk")
    ]
    assert [[r["id"] for r in q] for q in tops[0]] == [[r["id"] for r in q] for q in tops[1]]


def test_ensemble_members_give_each_sketch_seeds_metrics_from_one_index(tmp_path, cache):
    """stage.members: member e of a method.ensemble=3 run has the metrics of a run with seed 5 + 1000 e
    (float32 indexes: float16 rounds a member's slice and a single sketch differently, enough to swap near ties)."""
    base = [
        "task=howdy",
        "method=rise",
        *TINY,
        *SIZES["howdy"],
        *METHOD_TINY["rise"],
        "method.seed=5",
        "method.dtype=float32",
    ]
    ens = run(compose_run([*base, "method.ensemble=3", "stage.members=true"]), tmp_path / "ens")
    table = pd.read_csv(tmp_path / "ens" / "members.csv")
    assert list(table["sketch_seed"]) == ens["members"]["sketch_seeds"] == [5, 1005, 2005]
    for seed, row in zip(table["sketch_seed"], table.to_dict("records")):
        single = run(compose_run([*base, f"method.seed={seed}"]), tmp_path / f"s{seed}")
        for key in ("auprc@5", "auprc@10", "p@10"):
            assert row[key] == pytest.approx(single[key], abs=1e-6), (seed, key)
    assert ens["members"]["mean"]["auprc@10"] == pytest.approx(table["auprc@10"].mean())
    assert ens["members"]["std"]["auprc@10"] == pytest.approx(table["auprc@10"].std(ddof=1))
    with pytest.raises(ConfigError, match="method.ensemble >= 2"):
        run(compose_run([*base, "stage.members=true"]), tmp_path / "one")
    with pytest.raises(ConfigError, match="method=rise or method=rapidin"):
        run(compose_run(["task=howdy", "method=bm25", *SIZES["howdy"], "stage.members=true"]), tmp_path / "bm25")
    with pytest.raises(ConfigError, match="stage.members"):
        run(compose_run([*base, "method.ensemble=3", "stage.members=true", "stage.scores=topk"]), tmp_path / "top")


@pytest.mark.skipif(__import__("importlib").util.find_spec("faiss") is None, reason="needs rise-exp[faiss]")
def test_search_backends_run_the_attribute_stage(tmp_path, cache):
    """search.backend=faiss_flat (exact) reproduces the exact metrics; simhash runs and reports its storage."""
    base = ["task=howdy", "method=rise", *TINY, *SIZES["howdy"], *METHOD_TINY["rise"], "stage.ks=[5,10]"]
    exact = run(compose_run(base), tmp_path / "exact")
    flat = run(compose_run([*base, "search.backend=faiss_flat"]), tmp_path / "flat")
    simhash = run(compose_run([*base, "search.backend=simhash", "search.bits=512"]), tmp_path / "simhash")
    assert flat["scores"] == "topk" and flat["search"] == "faiss_flat"
    for key in ("auprc@5", "auprc@10", "p@10"):
        assert flat[key] == pytest.approx(exact[key], abs=1e-6), key
    assert simhash["search_bytes_per_row"] == 512 / 8 + 4 < exact["index_bytes_per_row"]
    assert 0.0 <= simhash["auprc@10"] <= 1.0
