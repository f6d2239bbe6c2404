"""Closed-loop stage: value the candidate pool, select under a budget, continue pretraining, evaluate.

For every budget x seed x selector a fresh copy of the starting model (the one :func:`prepare` returns)
is trained on the selection packed into the same number of fixed-length token blocks with the same
schedule, then evaluated (held-out perplexity; lm-eval-harness when installed). Writes
``closed_loop.md``, ``closed_loop.csv``, ``closed_loop_budget.png``, ``selections.jsonl``,
``values_<method>.npy`` and ``metrics.json`` into the run directory, logs to the configured loggers
and prints the table.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from rise_exp.closed_loop.evaluation import check_heldout, heldout_perplexities, lm_eval_scores, lm_eval_status
from rise_exp.closed_loop.packing import num_blocks, pack_blocks, text_tokens
from rise_exp.closed_loop.selectors import Selection, select
from rise_exp.closed_loop.training import continued_pretraining
from rise_exp.config.settings import Settings
from rise_exp.config.stages import ClosedLoopStageConfig
from rise_exp.core import progress
from rise_exp.data.task_builders import build_task
from rise_exp.models.embedded import embedded_dir
from rise_exp.models.loading import load_pretrained
from rise_exp.report.closed_loop import (
    aggregate,
    flat_metrics,
    markdown_table,
    metric_columns,
    plot_budget,
    print_table,
    write_csv,
)
from rise_exp.run.config import RunConfig
from rise_exp.run.loggers import close_loggers, make_loggers
from rise_exp.run.pipeline import Prepared, prepare_logged, tokenizer_texts
from rise_exp.run.runner import build_on, placed, publish, valuation_values
from rise_exp.run.stage_methods import stage_methods

log = logging.getLogger(__name__)

PLOT_METRIC = "ppl_high"


def start_source(run: RunConfig, prep: Prepared) -> tuple[str, str | None]:
    """Where a fresh copy of the starting model is loaded from: (path or hub id, revision)."""
    if prep.finetune is not None:
        return str(prep.finetune.final_dir), None
    if run.model.source == "embedded":
        return str(embedded_dir(run.model, tokenizer_texts(prep.task), Path(run.paths.cache_dir))), None
    return str(run.model.hub_id), run.model.revision


def fresh_start_model(run: RunConfig, source: str, revision: str | None) -> Any:
    """A fresh copy of the starting model with every weight trainable (continued pretraining trains them all).

    A LoRA finetune's adapter is merged into the weights: PEFT loads adapters frozen, so the unmerged model
    would have nothing to train.
    """
    model, _ = load_pretrained(
        source,
        revision=revision,
        dtype=run.model.dtype,
        trust_remote_code=run.model.trust_remote_code,
        merge_adapter=True,
    )
    return model.requires_grad_(True)


def selector_method(run: RunConfig, name: str) -> Settings:
    """The settings of the method behind selector ``name`` (``stage.methods.<name>`` overrides on top)."""
    return next(m for m in stage_methods(run) if m.name == name).settings(run)


def method_values(run: RunConfig, prep: Prepared) -> dict[str, np.ndarray]:
    """Values of every candidate for each method selector (built on the candidates, valued on the queries)."""
    out: dict[str, np.ndarray] = {}
    for planned in stage_methods(run):  # the methods admission estimated, with the same settings
        name, cfg = planned.name, planned.settings(run)
        ctx = replace(prep.ctx, work_dir=Path(prep.ctx.work_dir) / name)
        built = build_on(cfg, ctx, prep.task.candidates)
        values, seconds = valuation_values(built, prep.task.queries, run.stage.mode)
        log.info("valued %d candidates with %s in %.1fs", len(values), name, built.build_seconds + seconds)
        out[name] = values.astype(np.float64)
    return out


def _selection_stats(sel: Selection, prep: Prepared, counts: np.ndarray) -> dict[str, float]:
    labels = [prep.task.candidates[i].label for i in sel.rows]
    known = [int(x) for x in labels if x is not None]
    return {
        "selected_rows": float(len(sel.rows)),
        "selected_tokens": float(counts[list(sel.rows)].sum()),
        "frac_high": float(np.mean(known)) if known else float("nan"),
    }


def _evaluate(
    model: Any, tokenizer: Any, prep: Prepared, st: ClosedLoopStageConfig, lm_skip: str | None, max_length: int
) -> dict[str, float]:
    with placed(prep.ctx):  # a trained copy stays where its Trainer placed it (models/placement.py)
        out = heldout_perplexities(
            model,
            tokenizer,
            prep.task.heldout,
            list(st.eval.heldout),
            max_length=max_length,
            max_tokens=st.eval.max_tokens_per_batch,
        )
        if lm_skip is None:
            out.update(lm_eval_scores(model, tokenizer, st.eval.lm_eval))
    return out


def run(run: RunConfig, run_dir: Path) -> dict[str, Any]:
    """Run the closed loop for ``run.stage``; returns the flat metrics written to ``metrics.json``."""
    st = run.stage
    assert isinstance(st, ClosedLoopStageConfig)
    t_start = time.perf_counter()
    run_dir = Path(run_dir)
    selectors = list(st.selectors)
    unit, budgets, seeds = st.budget_unit, list(st.budgets), list(st.seeds)
    block_len, passes = st.pack.block_len, st.pack.passes
    max_length = run.data.max_length
    check_heldout(run.task.name, build_task(run.task).heldout, list(st.eval.heldout))  # fail before training

    run_dir.mkdir(parents=True, exist_ok=True)
    prep = prepare_logged(run, run_dir)
    task, tokenizer = prep.task, prep.ctx.tokenizer
    token_lists = text_tokens(task.candidates, tokenizer)
    counts = np.asarray([len(t) for t in token_lists], dtype=np.int64)
    values = method_values(run, prep)
    for name, v in values.items():
        np.save(run_dir / f"values_{name}.npy", v)
    lm_skip = lm_eval_status(st.eval.lm_eval)
    if lm_skip is not None:
        log.warning("lm_eval: %s", lm_skip)

    base = _evaluate(prep.ctx.model, tokenizer, prep, st, lm_skip, max_length)
    source, revision = start_source(run, prep)
    prep.ctx.model = None  # training works on fresh copies from here on

    rows: list[dict[str, Any]] = []
    extra: dict[str, Any] = {}
    runs = progress.task(len(budgets) * len(seeds) * len(selectors), "closed loop", unit="run")  # with an ETA
    with open(run_dir / "selections.jsonl", "w") as sel_file, runs:
        for budget in budgets:
            n_blocks = num_blocks(int(counts.sum()), budget, passes, block_len, st.pack.train_tokens)
            extra[f"train_tokens@{budget:g}"] = n_blocks * block_len
            for seed in seeds:
                for name in selectors:
                    sel = select(name, task.candidates, counts, budget, unit, seed, values.get(name))
                    sel_file.write(
                        json.dumps(
                            {
                                "selector": name,
                                "budget": budget,
                                "seed": seed,
                                "ids": [task.candidates[i].id for i in sel.rows],
                            }
                        )
                        + "\n"
                    )
                    blocks = pack_blocks(token_lists, sel.rows, n_blocks, block_len, seed)
                    model = fresh_start_model(run, source, revision)
                    tag = f"{name}-b{budget:g}-s{seed}"
                    loggers = (
                        make_loggers(run.logger, run_dir, name=f"closed_loop-{tag}", group=task.name)
                        if st.log_training
                        else []
                    )
                    stats = continued_pretraining(
                        model,
                        blocks,
                        tokenizer.pad_token_id,
                        train_cfg=st.train,
                        trainer_cfg=run.trainer,
                        root_dir=run_dir / "train" / tag,
                        seed=seed,
                        loggers=loggers,
                    )
                    close_loggers(loggers)
                    row: dict[str, Any] = {"selector": name, "budget": budget, "seed": seed}
                    row.update(_evaluate(model, tokenizer, prep, st, lm_skip, max_length))
                    row.update(_selection_stats(sel, prep, counts))
                    row.update(
                        train_tokens=float(stats.tokens),
                        train_steps=float(stats.steps),
                        train_loss=stats.final_loss,
                        train_seconds=stats.seconds,
                    )
                    rows.append(row)
                    log.info("%s: %s", tag, {k: round(v, 3) for k, v in row.items() if isinstance(v, float)})
                    del model
                    progress.advance()

    columns = metric_columns(rows)
    aggs = aggregate(rows, columns)
    shown = [c for c in columns if c.startswith(("ppl_", "lm_eval/"))] + ["frac_high"]
    (run_dir / "closed_loop.md").write_text(
        f"# Closed loop: {task.name}, {run.model.name}, budget unit {unit}, seeds {seeds}\n\n"
        + markdown_table(aggs, shown, base)
    )
    write_csv(run_dir / "closed_loop.csv", rows, aggs, columns)
    plot_budget(run_dir / "closed_loop_budget.png", aggs, PLOT_METRIC, base)

    metrics: dict[str, Any] = flat_metrics(aggs, columns)
    metrics.update({f"{k}/start": v for k, v in base.items()})
    metrics.update(extra)
    metrics.update(
        lm_eval=lm_skip or "ran",
        num_candidates=len(task.candidates),
        num_targets=len(task.queries),
        block_len=block_len,
        seconds=time.perf_counter() - t_start,
    )
    print_table(aggs, shown, f"closed loop: {task.name} ({run.model.name}, {unit} budget, seeds {seeds})", base)
    table = (
        ["selector", "budget", "seed", *columns],
        [[r["selector"], r["budget"], r["seed"], *(r.get(c) for c in columns)] for r in rows],
    )
    publish(
        run,
        run_dir,
        metrics,
        stage="closed_loop",
        title=None,
        tables={"closed_loop": table},
        files=[
            "closed_loop.md",
            "closed_loop.csv",
            "closed_loop_budget.png",
            "selections.jsonl",
            *(f"values_{n}.npy" for n in values),
        ],
    )
    return metrics
