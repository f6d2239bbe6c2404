"""Index once, ask many times: a 300-row custom pool indexed once, then queried, valued and selected from
the index alone; nothing (tokenizer, model, finetune, index) is built twice."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rise_exp.cli import run
from rise_exp.core.errors import DataError
from rise_exp.data.synthetic import make_howdy
from rise_exp.data.task_builders import build_task
from rise_exp.run.config import compose
from tests.helpers import tiny_run

TINY = tiny_run("method.kr=32", "method.kh=32", "method.kg=16")


def cache_state(cache: Path) -> dict[str, int]:
    """Every file under the cache with its modification time: what was built, and when."""
    return {
        str(p.relative_to(cache)): p.stat().st_mtime_ns
        for p in cache.rglob("*")
        if p.is_file()
        and (not p.name.endswith((".lock", ".json")) or p.name in ("SEALED.json", "DONE.json", "manifest.json"))
    }


@pytest.fixture(scope="module")
def indexed(tmp_path_factory):
    """One attribution run on an unlabelled 300-row pool: it builds everything once."""
    root = tmp_path_factory.mktemp("workflow")
    data = make_howdy(n_train=300, n_queries=5, seed=3)
    pool = root / "pool.jsonl"
    pool.write_text(
        "".join(json.dumps({k: v for k, v in r.to_dict().items() if k != "label"}) + "\n" for r in data.train)
    )
    cache = root / "cache"
    mp = pytest.MonkeyPatch()
    mp.setenv("RISE_EXP_CACHE", str(cache))
    base = ["task=custom", f"task.train_path={pool}", "model=tiny-pythia", *TINY]
    metrics = run(compose([*base, 'task.query_texts=["howdy! what is the capital of france?"]']), root / "first")
    yield {"root": root, "pool": pool, "cache": cache, "metrics": metrics, "base": base}
    mp.undo()


def test_an_unlabelled_pool_gives_rankings_and_no_metrics(indexed):
    m = indexed["metrics"]
    assert "auprc@10" not in m and m["num_train"] == 300
    assert Path(m["index"]).parent == indexed["cache"].resolve() / "indexes"
    assert Path(m["index"]).name.startswith("pool-rise-")


def test_three_query_runs_rebuild_nothing(indexed, caplog):
    before = cache_state(indexed["cache"])
    questions = ["howdy! who wrote hamlet?", "what is the largest ocean?", "howdy! how many legs has a spider?"]
    for i, q in enumerate(questions):
        out = indexed["root"] / f"query{i}"
        metrics = run(
            compose(
                [
                    "stage=query",
                    f"stage.index={indexed['metrics']['index']}",
                    f'stage.query_texts=["{q}"]',
                    "stage.k=5",
                    "logger=none",
                ]
            ),
            out,
        )
        top = json.loads((out / "topk.jsonl").read_text())
        assert metrics["num_queries"] == 1 and top["query"] == q and len(top["top"]) == 5
        assert (metrics["search"], metrics["search_rerank"]) == ("exact", 0)
        assert all(t["id"] and t["text"] for t in top["top"])
    # the same pool through the task (not the index): tokenizer, model, finetune and index all come from the cache
    run(
        compose(["stage=query", *indexed["base"], 'stage.query_texts=["a brand new question"]']), indexed["root"] / "q4"
    )
    assert cache_state(indexed["cache"]) == before
    assert not any("training a" in r.message or "indexing" in r.message for r in caplog.records)


@pytest.mark.parametrize("stream", [False, True])
def test_value_and_select_from_the_same_index(indexed, stream):
    index = indexed["metrics"]["index"]
    targets = 'stage.query_texts=["howdy! tell me a story about a galaxy"]'
    out = indexed["root"] / "valuate"
    m = run(compose(["stage=valuate", f"stage.index={index}", targets, "logger=none"]), out)
    ranked = [json.loads(x) for x in (out / "selection.jsonl").read_text().splitlines()]
    assert m["num_candidates"] == 300 and len(ranked) == 300 and ranked[0]["rank"] == 1
    assert [r["value"] for r in ranked] == sorted((r["value"] for r in ranked), reverse=True)
    sel = indexed["root"] / f"select-{stream}"
    m = run(
        compose(
            [
                "stage=select",
                f"stage.index={index}",
                f"stage.pool_path={indexed['pool']}",
                f"stage.stream={str(stream).lower()}",
                targets,
                "stage.fraction=0.2",
                "logger=none",
            ]
        ),
        sel,
    )
    assert m["num_selected"] == 60 and m["value_mean_selected"] > m["value_mean_pool"]
    chosen = {r["id"] for r in map(json.loads, (sel / "selection.jsonl").read_text().splitlines())}
    best = {r["id"] for r in ranked[:60]}
    assert chosen == best  # the selection is the valuation's top 20%
    task = build_task({"name": "custom", "train_path": str(sel / "selected.jsonl"), "query_texts": ["q"]})
    assert len(task.train) == 60 and {r.id for r in task.train} == best  # loads as a task pool
    pool = {r["id"]: r for r in map(json.loads, indexed["pool"].read_text().splitlines())}
    for row in map(json.loads, (sel / "selected.jsonl").read_text().splitlines()):
        assert {k: v for k, v in row.items() if k != "value"} == pool[row["id"]]  # the pool's rows, unchanged


@pytest.mark.parametrize("stream", [False, True])
def test_select_refuses_another_pool(indexed, tmp_path, stream):
    other = tmp_path / "other.jsonl"
    lines = indexed["pool"].read_text().splitlines()
    other.write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(DataError, match="another pool than the index"):
        run(
            compose(
                [
                    "stage=select",
                    f"stage.index={indexed['metrics']['index']}",
                    f"stage.pool_path={other}",
                    f"stage.stream={str(stream).lower()}",
                    "stage.query_texts=[x]",
                    "stage.count=5",
                    "logger=none",
                ]
            ),
            tmp_path / "run",
        )
