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
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from rise_exp.cli import CONF_DIR
from rise_exp.closed_loop.evaluation import check_heldout, heldout_perplexities, lm_eval_scores, lm_eval_status
from rise_exp.closed_loop.packing import num_blocks, pack_blocks, text_tokens
from rise_exp.closed_loop.report import aggregate, flat_metrics, markdown_table, metric_columns, plot_budget, \
    print_table, write_csv
from rise_exp.closed_loop.selectors import BUILTIN_SELECTORS, Selection, check_budgets, check_selectors, \
    method_config, select
from rise_exp.closed_loop.training import check_train_cfg, continued_pretraining
from rise_exp.data.tasks import build_task
from rise_exp.errors import ConfigError
from rise_exp.methods.registry import METHODS, build_method
from rise_exp.models import embedded_dir, load_pretrained
from rise_exp.pipeline import Prepared, peak_rss_mb, prepare_logged, to_dict, tokenizer_texts
from rise_exp.results import write_json
from rise_exp.run_logging import close_loggers, log_summary, make_loggers

log = logging.getLogger(__name__)

PLOT_METRIC = "ppl_high"


def _plain(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node


def _seeds(value: Any) -> list[int]:
    seeds = list(value or [])
    if not seeds:
        raise ConfigError("stage.seeds is empty; give at least one integer seed, e.g. [0, 1]")
    try:
        return [int(s) for s in seeds]
    except (TypeError, ValueError):
        raise ConfigError(f"stage.seeds must be integers, got {seeds}") from None


def start_source(prep: Prepared, cache_dir: Path) -> tuple[str, str | None]:
    """Where a fresh copy of the starting model is loaded from: (path or hub id, revision)."""
    if prep.finetune is not None:
        return str(prep.finetune.final_dir), None
    spec = prep.spec
    if spec.source == "embedded":
        return str(embedded_dir(spec, tokenizer_texts(prep.task), cache_dir)), None
    return str(spec.hub_id), spec.revision


def method_overrides(node: Any, names: list[str]) -> dict[str, Any]:
    """``stage.methods`` as a dict; every key must be a method selector of this run."""
    overrides = _plain(node) or {}
    unknown = sorted(set(overrides) - set(names))
    if unknown:
        raise ConfigError(f"stage.methods has settings for {unknown}, which are not method selectors in "
                          f"stage.selectors ({', '.join(names) or 'none'})")
    return dict(overrides)


def method_values(cfg: DictConfig, prep: Prepared, names: list[str], overrides: dict[str, Any],
                  mode: str | None) -> dict[str, np.ndarray]:
    """Values of every candidate for each method selector (built on the candidates, valued on the queries)."""
    out: dict[str, np.ndarray] = {}
    for name in names:
        mcfg = method_config(name, CONF_DIR, overrides.get(name), base=cfg.get("method"))
        ctx = replace(prep.ctx, work_dir=Path(prep.ctx.work_dir) / name)
        method = build_method(mcfg, ctx)
        t0 = time.perf_counter()
        method.build(prep.task.candidates)
        values = np.asarray(method.value(prep.task.queries, mode=str(mode or mcfg.get("valuation", "mean"))),
                            dtype=np.float64)
        if values.shape != (len(prep.task.candidates),):
            raise RuntimeError(f"method {name} returned values of shape {values.shape}, "
                               f"expected ({len(prep.task.candidates)},)")
        log.info("valued %d candidates with %s in %.1fs", len(values), name, time.perf_counter() - t0)
        out[name] = values
    return out


def _selection_stats(sel: Selection, prep: Prepared, counts: np.ndarray) -> dict[str, float]:
    labels = [prep.task.candidates[i].label for i in sel.rows]
    known = [int(x) for x in labels if x is not None]
    return {"selected_rows": float(len(sel.rows)), "selected_tokens": float(counts[list(sel.rows)].sum()),
            "frac_high": float(np.mean(known)) if known else float("nan")}


def _evaluate(model: Any, tokenizer: Any, prep: Prepared, ev: Mapping[str, Any], lm_cfg: Mapping[str, Any],
              lm_skip: str | None, max_length: int) -> dict[str, float]:
    out = heldout_perplexities(model, tokenizer, prep.task.heldout, list(ev["heldout"]), max_length=max_length,
                               max_tokens=int(ev.get("max_tokens_per_batch", 4096)))
    if lm_skip is None:
        out.update(lm_eval_scores(model, tokenizer, lm_cfg))
    return out


def run_closed_loop(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """Run the closed loop for ``cfg.stage``; returns the flat metrics written to ``metrics.json``."""
    st = cfg.stage
    t_start = time.perf_counter()
    run_dir = Path(run_dir)
    selectors = check_selectors(list(st.selectors), tuple(METHODS))
    method_names = [s for s in selectors if s not in BUILTIN_SELECTORS]
    overrides = method_overrides(st.get("methods"), method_names)
    unit = str(st.get("budget_unit", "rows"))
    budgets = check_budgets(list(st.budgets or []), unit)
    seeds = _seeds(st.get("seeds"))
    pack = dict(_plain(st.get("pack")) or {})
    block_len, passes = int(pack.get("block_len", 128)), float(pack.get("passes", 3.0))
    train_cfg = check_train_cfg(_plain(st.get("train")) or {})
    ev = dict(_plain(st.get("eval")) or {})
    ev.setdefault("heldout", ["high", "junk"])
    lm_cfg = dict(ev.get("lm_eval") or {})
    max_length = int(cfg.data.max_length)
    check_heldout(str(cfg.task.name), build_task(cfg.task).heldout, list(ev["heldout"]))  # fail before training

    run_dir.mkdir(parents=True, exist_ok=True)
    prep = prepare_logged(cfg, run_dir)
    task, tokenizer = prep.task, prep.ctx.tokenizer
    token_lists = text_tokens(task.candidates, tokenizer)
    counts = np.asarray([len(t) for t in token_lists], dtype=np.int64)
    values = method_values(cfg, prep, method_names, overrides, st.get("mode"))
    for name, v in values.items():
        np.save(run_dir / f"values_{name}.npy", v)
    lm_skip = lm_eval_status(lm_cfg)
    if lm_skip is not None:
        log.warning("lm_eval: %s", lm_skip)

    base = _evaluate(prep.ctx.model, tokenizer, prep, ev, lm_cfg, lm_skip, max_length)
    source, revision = start_source(prep, Path(cfg.paths.cache_dir))
    dtype = prep.spec.dtype
    prep.ctx.model = None  # training works on fresh copies from here on

    rows: list[dict[str, Any]] = []
    extra: dict[str, Any] = {}
    with open(run_dir / "selections.jsonl", "w") as sel_file:
        for budget in budgets:
            n_blocks = num_blocks(int(counts.sum()), budget, passes, block_len, pack.get("train_tokens"))
            extra[f"train_tokens@{budget:g}"] = n_blocks * block_len
            for seed in seeds:
                for name in selectors:
                    sel = select(name, task.candidates, counts, budget, unit, seed, values.get(name))
                    sel_file.write(json.dumps({"selector": name, "budget": budget, "seed": seed,
                                               "ids": [task.candidates[i].id for i in sel.rows]}) + "\n")
                    blocks = pack_blocks(token_lists, sel.rows, n_blocks, block_len, seed)
                    model, _ = load_pretrained(source, revision=revision, dtype=dtype,
                                               trust_remote_code=prep.spec.trust_remote_code)
                    tag = f"{name}-b{budget:g}-s{seed}"
                    loggers = (make_loggers(cfg.logger, run_dir, name=f"closed_loop-{tag}", group=str(task.name))
                               if bool(st.get("log_training", False)) else [])
                    stats = continued_pretraining(model, blocks, tokenizer.pad_token_id, train_cfg=train_cfg,
                                                  trainer_cfg=to_dict(cfg.trainer), root_dir=run_dir / "train" / tag,
                                                  seed=seed, loggers=loggers)
                    close_loggers(loggers)
                    row: dict[str, Any] = {"selector": name, "budget": budget, "seed": seed}
                    row.update(_evaluate(model, tokenizer, prep, ev, lm_cfg, lm_skip, max_length))
                    row.update(_selection_stats(sel, prep, counts))
                    row.update(train_tokens=float(stats.tokens), train_steps=float(stats.steps),
                               train_loss=stats.final_loss, train_seconds=stats.seconds)
                    rows.append(row)
                    log.info("%s: %s", tag, {k: round(v, 3) for k, v in row.items() if isinstance(v, float)})
                    del model

    columns = metric_columns(rows)
    aggs = aggregate(rows, columns)
    shown = [c for c in columns if c.startswith(("ppl_", "lm_eval/"))] + ["frac_high"]
    (run_dir / "closed_loop.md").write_text(
        f"# Closed loop: {task.name}, {cfg.model.name}, budget unit {unit}, seeds {seeds}\n\n"
        + markdown_table(aggs, shown, base))
    write_csv(run_dir / "closed_loop.csv", rows, aggs, columns)
    plot_budget(run_dir / "closed_loop_budget.png", aggs, PLOT_METRIC, base.get(PLOT_METRIC))

    metrics: dict[str, Any] = flat_metrics(aggs, columns)
    metrics.update({f"{k}/start": v for k, v in base.items()})
    metrics.update(extra)
    metrics.update(lm_eval=lm_skip or "ran", num_candidates=len(task.candidates), num_targets=len(task.queries),
                   block_len=block_len, seconds=time.perf_counter() - t_start, peak_rss_mb=peak_rss_mb())
    write_json(run_dir / "metrics.json", metrics)

    loggers = make_loggers(cfg.logger, run_dir, name="closed_loop", group=str(task.name), config=to_dict(cfg))
    log_summary(loggers, metrics)
    for lg in loggers:
        if hasattr(lg, "log_table"):
            lg.log_table(key="closed_loop", columns=["selector", "budget", "seed", *columns],
                         data=[[r["selector"], r["budget"], r["seed"], *(r.get(c) for c in columns)] for r in rows])
    close_loggers(loggers)
    print_table(aggs, shown, f"closed loop: {task.name} ({cfg.model.name}, {unit} budget, seeds {seeds})", base)
    return metrics
