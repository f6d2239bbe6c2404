"""The attribute stage answers through search.rerank: with every row a candidate it is exact search."""

from __future__ import annotations

import pytest

from rise_exp.cli import run
from rise_exp.core.errors import ConfigError
from rise_exp.run.config import RunConfig, compose
from tests.helpers import tiny_run

BASE = [
    "task=howdy",
    "method=rise",
    "task.n_train=48",
    "task.n_queries=4",
    "method.kr=32",
    "method.kh=32",
    "method.kg=16",
    "stage.ks=[5,10]",
    *tiny_run("finetune.max_tokens_per_batch=2048", epochs=2),
]


def test_simhash_reranking_the_whole_pool_gives_exact_metrics(tmp_path, monkeypatch):
    monkeypatch.setenv("RISE_EXP_CACHE", str(tmp_path / "cache"))
    exact = run(compose([*BASE, "stage.scores=topk"]), tmp_path / "exact")
    plain = run(compose([*BASE, "search.backend=simhash", "search.bits=64"]), tmp_path / "simhash")
    reranked = run(compose([*BASE, "search.backend=simhash", "search.bits=64", "search.rerank=48"]), tmp_path / "re")
    for key in ("auprc@5", "auprc@10", "p@10"):
        assert reranked[key] == pytest.approx(exact[key], abs=1e-6), key
    assert reranked["search_bytes_per_row"] == plain["search_bytes_per_row"] == 64 / 8 + 4
    assert (reranked["search_rerank"], plain["search_rerank"]) == (48, 0)  # metrics.json says how it searched


def test_rerank_with_exact_search_is_refused_before_any_work():
    with pytest.raises(ConfigError, match=r"^search.rerank re-scores an approximate backend's candidates"):
        RunConfig.from_cfg(compose([*BASE, "search.rerank=100"]))
