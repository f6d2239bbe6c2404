"""Closed loop: exact token budgets, bounds ordering, selectors, packing, reports, lm-eval skip, bad input."""

from __future__ import annotations

import csv
import json
import logging
import math
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from rise_exp.cli import run
from rise_exp.closed_loop.evaluation import lm_eval_scores, lm_eval_status, perplexity
from rise_exp.closed_loop.packing import num_blocks, pack_blocks, pack_stream
from rise_exp.closed_loop.selectors import prefix_within_budget, select
from rise_exp.config.stages import LmEvalConfig
from rise_exp.core.errors import ConfigError, DataError
from rise_exp.data.records import Record
from rise_exp.models.loading import load_pretrained
from rise_exp.report.closed_loop import aggregate, markdown_table, mean_std
from rise_exp.run.config import RunConfig, compose
from rise_exp.stages.closed_loop import selector_method
from tests.helpers import tiny_run

SELECTORS = ["bm25", "random", "all", "oracle", "anti_oracle"]
BLOCK = 32


BRAIN_ROT = ("task=brain_rot", "task.n_train=60", "task.n_queries=4", "task.n_heldout=8")


def _cfg(cache: Path, *extra: str, task: tuple[str, ...] = BRAIN_ROT):
    overrides = tiny_run(
        *task,
        "stage=closed_loop",
        "finetune=none",
        f"paths.cache_dir={cache}",
        "model.max_position=256",
        "data.max_length=256",
        f"stage.selectors=[{','.join(SELECTORS)}]",
        "stage.budgets=[0.3]",
        "stage.seeds=[0,1]",
        f"stage.pack.block_len={BLOCK}",
        "stage.pack.passes=2",
        "stage.train.lr=3e-3",
        "stage.train.max_tokens_per_batch=256",
        *extra,
        epochs=None,
    )
    return compose(overrides)


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture(scope="module")
def loop(tmp_path_factory):
    """One small closed loop (5 selectors x 2 seeds) with lm_eval made unimportable."""
    root = tmp_path_factory.mktemp("closed_loop")
    handler = _Records()
    logging.getLogger("rise_exp").addHandler(handler)
    saved = sys.modules.get("lm_eval")
    sys.modules["lm_eval"] = None  # type: ignore[assignment]  # import lm_eval -> ImportError
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: extra threads only add synchronisation on a busy CPU
    try:
        cfg = _cfg(root / "cache")
        metrics = run(cfg, root / "run")
    finally:
        torch.set_num_threads(threads)
        logging.getLogger("rise_exp").removeHandler(handler)
        if saved is None:
            sys.modules.pop("lm_eval", None)
        else:
            sys.modules["lm_eval"] = saved
    with open(root / "run" / "closed_loop.csv") as f:
        rows = list(csv.DictReader(f))
    return {"root": root, "run": root / "run", "metrics": metrics, "rows": rows, "logs": handler.messages, "cfg": cfg}


def _raw(loop):
    return [r for r in loop["rows"] if r["seed"] not in ("mean", "std")]


def test_every_selector_trains_on_exactly_the_token_budget(loop):
    raw = _raw(loop)
    assert sorted((r["selector"], r["seed"]) for r in raw) == sorted((s, str(k)) for s in SELECTORS for k in (0, 1))
    budget = loop["metrics"]["train_tokens@0.3"]
    assert budget % BLOCK == 0 and budget > 0
    # the pool's token count fixes the budget: round(2 passes * 0.3 * pool tokens / block) blocks
    pool_tokens = sum(float(r["selected_tokens"]) for r in raw if r["selector"] == "all") / 2
    assert budget == BLOCK * round(2 * 0.3 * pool_tokens / BLOCK)
    steps = {float(r["train_steps"]) for r in raw}
    assert len(steps) == 1  # same schedule for everyone
    for r in raw:  # counted by a callback on the batches the trainer actually saw
        assert float(r["train_tokens"]) == budget, r["selector"]


def test_bounds_select_by_label_and_oracle_beats_anti_oracle(loop):
    m = loop["metrics"]
    assert m["frac_high/oracle"] == 1.0 and m["frac_high/anti_oracle"] == 0.0
    assert m["ppl_high/oracle"] < m["ppl_high/anti_oracle"]
    assert m["ppl_junk/anti_oracle"] < m["ppl_junk/oracle"]
    for s in SELECTORS:
        assert m[f"ppl_high/{s}"] < m["ppl_high/start"]  # every selection trained on real text
    raw = {(r["selector"], r["seed"]): r for r in _raw(loop)}
    assert float(raw[("random", "0")]["selected_rows"]) == round(0.3 * 60)
    assert float(raw[("all", "0")]["selected_rows"]) == 60
    assert raw[("random", "0")]["selected_tokens"] != raw[("random", "1")]["selected_tokens"]


def test_outputs_table_csv_plot_and_metrics(loop):
    run = loop["run"]
    md = (run / "closed_loop.md").read_text()
    for s in ["start", *SELECTORS]:
        assert f"| {s} |" in md
    assert "ppl_high" in md and "±" in md
    agg = [r for r in loop["rows"] if r["seed"] in ("mean", "std")]
    assert len(agg) == 2 * len(SELECTORS)
    mean = {r["selector"]: float(r["ppl_high"]) for r in agg if r["seed"] == "mean"}
    per_seed = {s: [float(r["ppl_high"]) for r in _raw(loop) if r["selector"] == s] for s in SELECTORS}
    for s in SELECTORS:
        assert mean[s] == pytest.approx(np.mean(per_seed[s]))
        assert loop["metrics"][f"ppl_high/{s}"] == pytest.approx(mean[s])
    assert (run / "closed_loop_budget.png").stat().st_size > 1000
    on_disk = json.loads((run / "metrics.json").read_text())
    assert on_disk["ppl_high/oracle"] == pytest.approx(loop["metrics"]["ppl_high/oracle"])
    sel = [json.loads(line) for line in (run / "selections.jsonl").read_text().splitlines()]
    assert len(sel) == 2 * len(SELECTORS) and len(sel[0]["ids"]) > 0


def test_lm_eval_is_skipped_with_one_clear_message(loop):
    status = loop["metrics"]["lm_eval"]
    assert status.startswith("skipped (lm_eval is not importable") and "rise-exp[eval]" in status
    assert sum("lm_eval: skipped" in msg for msg in loop["logs"]) == 1
    assert not any(k.startswith("lm_eval/") for k in loop["metrics"])


def test_fresh_copies_start_from_the_prepared_model(loop):
    (model_dir,) = [p for p in (loop["root"] / "cache" / "models").iterdir() if p.is_dir()]  # not the .lock
    model, tok = load_pretrained(model_dir)
    task_cfg = loop["cfg"].task
    from rise_exp.data.task_builders import build_task

    high = build_task(task_cfg).heldout["high"]
    assert perplexity(model, high, tok, max_length=256) == pytest.approx(loop["metrics"]["ppl_high/start"], rel=1e-6)


# ---------------------------------------------------------------- units


def _pool() -> list[Record]:
    return [Record(id=str(i), text=f"t{i}", label=i % 2) for i in range(10)]


def test_prefix_within_budget_rows_and_tokens():
    counts = np.array([5, 1, 1, 1, 2])  # 10 tokens
    assert prefix_within_budget([4, 3, 2, 1, 0], counts, 0.4, "rows") == [4, 3]
    assert prefix_within_budget([4, 3, 2, 1, 0], counts, 0.3, "tokens") == [4, 3]  # 2 + 1 >= 3
    assert prefix_within_budget([0, 1], counts, 0.5, "tokens") == [0]  # 5 >= 5
    assert prefix_within_budget([1, 2], counts, 1.0, "tokens") == [1, 2]  # short list: taken whole
    assert prefix_within_budget([3], counts, 0.01, "rows") == [3]  # at least one row


def test_selectors_rank_bound_and_randomise():
    pool, counts = _pool(), np.ones(10)
    values = np.arange(10, dtype=float)
    assert select("bm25", pool, counts, 0.3, "rows", 0, values).rows == (9, 8, 7)
    oracle = select("oracle", pool, counts, 0.3, "rows", 0)
    anti = select("anti_oracle", pool, counts, 0.8, "rows", 0)
    assert len(oracle.rows) == 3 and all(pool[i].label == 1 for i in oracle.rows)
    assert sorted(anti.rows) == [0, 2, 4, 6, 8]  # fewer eligible rows than the budget: all of them
    assert select("all", pool, counts, 0.1, "rows", 0).rows == tuple(range(10))
    r0, r0b, r1 = (select("random", pool, counts, 0.5, "rows", s).rows for s in (0, 0, 1))
    assert r0 == r0b and r0 != r1 and len(set(r0)) == 5


def test_pack_blocks_exact_length_whole_texts_and_cycling():
    texts = [np.array([10, 11, 0]), np.array([20, 0]), np.array([30, 31, 32, 0])]
    stream = pack_stream(texts, [0, 1, 2], 20, seed=3)
    assert len(stream) == 20
    first = stream[:9]  # one full pass: each text exactly once, whole
    pieces = np.split(first, np.where(first == 0)[0][:-1] + 1)
    assert sorted(tuple(p) for p in pieces) == sorted(tuple(t) for t in texts)
    blocks = pack_blocks(texts, [1], n_blocks=3, block_len=4, seed=0)  # a one-text selection is cycled
    assert [b.input_ids.tolist() for b in blocks] == [[20, 0, 20, 0]] * 3
    assert all(b.target_mask.tolist() == [False, True, True, True] for b in blocks)
    assert num_blocks(1000, 0.3, 2.0, 50) == 12 and num_blocks(1000, 0.3, 2.0, 50, train_tokens=500) == 10


def test_report_mean_std_and_markdown():
    rows = [
        {"selector": "a", "budget": 0.3, "seed": 0, "x": 1.0},
        {"selector": "a", "budget": 0.3, "seed": 1, "x": 3.0},
        {"selector": "b", "budget": 0.3, "seed": 0, "x": 5.0},
    ]
    aggs = aggregate(rows, ["x"])
    assert aggs[0]["x_mean"] == 2.0 and aggs[0]["x_std"] == pytest.approx(math.sqrt(2.0))
    assert aggs[1]["n"] == 1 and aggs[1]["x_std"] == 0.0
    assert mean_std([1.0, float("nan"), 3.0]) == (2.0, pytest.approx(math.sqrt(2.0)))
    md = markdown_table(aggs, ["x"], base={"x": 9.0})
    assert "| a | 0.3 | 2 | 2.000 ± 1.414 |" in md and "| start | - | - | 9.000 |" in md


def test_selector_methods_are_composed_through_hydra_with_overrides(tmp_path):
    run_cfg = RunConfig.from_cfg(
        _cfg(
            tmp_path,
            "seed=7",
            "method=bm25",
            "method.b=0.5",
            "stage.selectors=[bm25,rise]",
            "+stage.methods.rise.kr=64",
        )
    )
    bm25 = selector_method(run_cfg, "bm25")  # the run's own method node, command-line overrides included
    assert bm25.b == 0.5 and bm25.k1 == 1.5 and bm25.name == "bm25"
    rise = selector_method(run_cfg, "rise")  # composed from conf/method/rise.yaml: ${seed} resolves to the run's
    assert rise.kr == 64 and rise.seed == 7 and rise.kh == 128
    with pytest.raises(ConfigError, match="stage.methods.rise.name"):
        RunConfig.from_cfg(_cfg(tmp_path, "stage.selectors=[rise]", "+stage.methods.rise.name=bm25"))


# ---------------------------------------------------------------- lm-eval


def test_lm_eval_status_when_extra_absent_or_disabled(monkeypatch):
    monkeypatch.setitem(sys.modules, "lm_eval", None)
    assert lm_eval_status(LmEvalConfig(tasks=("arc_challenge_chat",))).startswith("skipped (lm_eval is not importable")
    assert lm_eval_status(LmEvalConfig(enabled=False)) == "skipped (stage.eval.lm_eval.enabled is false)"


def test_lm_eval_scores_calls_the_harness_api(monkeypatch):
    calls: dict = {}

    class FakeHFLM:
        def __init__(self, pretrained, tokenizer, **kw):
            calls["hflm"] = (pretrained, tokenizer, kw)

    def simple_evaluate(model, tasks, **kw):
        calls["eval"] = (model, tasks, kw)
        return {
            "results": {
                "arc_challenge_chat": {
                    "alias": "arc",
                    "exact_match,strict-match": 0.25,
                    "exact_match_stderr,strict-match": 0.1,
                    "acc,none": 0.5,
                }
            }
        }

    mod, models, hf = (types.ModuleType(n) for n in ("lm_eval", "lm_eval.models", "lm_eval.models.huggingface"))
    mod.simple_evaluate, hf.HFLM = simple_evaluate, FakeHFLM
    for name, m in (("lm_eval", mod), ("lm_eval.models", models), ("lm_eval.models.huggingface", hf)):
        monkeypatch.setitem(sys.modules, name, m)
    model, tok = torch.nn.Linear(1, 1), types.SimpleNamespace(chat_template=None)
    cfg = LmEvalConfig(tasks=("arc_challenge_chat",), limit=5, batch_size=2, apply_chat_template="auto")
    assert lm_eval_status(cfg) is None
    scores = lm_eval_scores(model, tok, cfg)
    assert scores == {
        "lm_eval/arc_challenge_chat/exact_match[strict-match]": 0.25,
        "lm_eval/arc_challenge_chat/acc": 0.5,
    }
    assert calls["hflm"][0] is model and calls["hflm"][1] is tok and calls["hflm"][2]["batch_size"] == 2
    assert calls["eval"][1] == ["arc_challenge_chat"] and calls["eval"][2]["limit"] == 5
    assert calls["eval"][2]["apply_chat_template"] is False


# ---------------------------------------------------------------- bad input


def test_unknown_selector_lists_the_allowed_ones(tmp_path):
    with pytest.raises(
        ConfigError, match=r"unknown selector in stage.selectors 'magic'.*anti_oracle.*bm25.*oracle.*random.*rise"
    ):
        run(_cfg(tmp_path, "stage.selectors=[bm25,magic]"), tmp_path / "run")


@pytest.mark.parametrize("budget", ["0", "1.5", "-0.2"])
def test_budget_outside_unit_interval_is_rejected(tmp_path, budget):
    with pytest.raises(ConfigError, match=r"outside \(0, 1\]"):
        run(_cfg(tmp_path, f"stage.budgets=[{budget}]"), tmp_path / "run")
    with pytest.raises(ConfigError, match="stage.budget_unit 'bytes'; allowed values: rows, tokens"):
        run(_cfg(tmp_path, "stage.budget_unit=bytes"), tmp_path / "run")


def test_task_without_heldout_sets_fails_before_training(tmp_path):
    cfg = _cfg(tmp_path, task=("task=howdy", "task.n_train=40", "task.n_queries=4"))
    with pytest.raises(DataError, match=r"task 'howdy' has no held-out set\(s\) \['high', 'junk'\]"):
        run(cfg, tmp_path / "run")
    assert not (tmp_path / "models").exists()  # nothing was built or trained


def test_method_overrides_must_name_a_method_selector(tmp_path):
    cfg = _cfg(tmp_path, "stage.selectors=[random,oracle]", "+stage.methods.bm25.k1=0.9")
    with pytest.raises(ConfigError, match=r"stage.methods has settings for 'bm25'"):
        run(cfg, tmp_path / "run")
    assert not (tmp_path / "models").exists()
