"""stage=closed_loop end to end: exact token budgets, bounds ordering, outputs, the lm-eval skip, composed selector
methods and bad input (the units: tests/closed_loop/, tests/report/test_closed_loop.py)."""

from __future__ import annotations

import csv
import json
import logging
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from rise_exp.cli import run
from rise_exp.closed_loop.evaluation import perplexity
from rise_exp.core.errors import ConfigError, DataError
from rise_exp.models.loading import load_pretrained
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
