"""Shared preparation of a run: task data, starting model, (cached) finetuning, method context."""

from __future__ import annotations

import logging
import resource
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from rise_exp.data.tasks import Task, build_task
from rise_exp.methods.base import MethodContext
from rise_exp.models import ModelSpec, config_hash, load_base_model, load_pretrained
from rise_exp.stages.finetune import FinetuneResult, finetune_key, run_finetune

log = logging.getLogger(__name__)


@dataclass
class Prepared:
    """Everything a stage needs after data and model preparation."""

    task: Task
    ctx: MethodContext
    spec: ModelSpec | None
    finetune: FinetuneResult | None


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def tokenizer_texts(task: Task) -> list[str]:
    """Text an embedded model's tokenizer is trained on: every row the run will see."""
    rows = list(task.train) + list(task.queries) + list(task.candidates)
    for extra in task.heldout.values():
        rows += list(extra)
    return [r.full_text for r in rows]


def to_dict(node: Any) -> dict[str, Any]:
    """A resolved plain dict of a config node."""
    if isinstance(node, DictConfig):
        return OmegaConf.to_container(node, resolve=True)  # type: ignore[return-value]
    return dict(node)


def prepare(cfg: DictConfig, run_dir: Path, *, need_model: bool = True, loggers: list[Any] | None = None) -> Prepared:
    """Build the task, load the model, finetune it (cached) and return the method context.

    Args:
        cfg: The composed run config.
        run_dir: The Hydra run directory.
        need_model: False for model-free methods (BM25): no model is loaded or trained.
        loggers: Lightning loggers for the finetune stage.
    """
    task = build_task(cfg.task)
    log.info("task %s: %d train rows, %d queries", task.name, len(task.train), len(task.queries))
    cache = Path(cfg.paths.cache_dir)
    ctx = MethodContext(model=None, tokenizer=None, work_dir=run_dir / "method", seed=int(cfg.seed),
                        trainer=to_dict(cfg.trainer), max_length=int(cfg.data.max_length),
                        mask_prompt=bool(cfg.data.get("attribute_mask_prompt", False)))
    if not need_model:
        return Prepared(task, ctx, None, None)

    model, tokenizer, spec, _ = load_base_model(to_dict(cfg.model), tokenizer_texts(task), cache)
    ft_cfg = to_dict(cfg.finetune)
    result: FinetuneResult | None = None
    model_id = spec.identity
    if int(ft_cfg.get("epochs", 0)) > 0:
        texts_hash = config_hash([r.full_text for r in task.train], n=16)  # as formatted for training
        ft_seed = int(ft_cfg.get("seed", 0))
        key = finetune_key(spec.identity, f"{task.data_hash()}:{texts_hash}", ft_cfg, ft_seed)
        result = run_finetune(model, tokenizer, task.train, ft_cfg=ft_cfg, trainer_cfg=to_dict(cfg.trainer),
                              out_dir=cache / "finetune" / key, seed=ft_seed, loggers=loggers or [])
        if result.cached:
            log.info("reusing cached finetune %s", result.final_dir)
        model, tokenizer = load_pretrained(result.final_dir, dtype=spec.dtype)
        model_id = f"{spec.identity}+finetune:{key}"
    model.eval()
    ctx.model, ctx.tokenizer, ctx.model_id = model, tokenizer, model_id
    ctx.checkpoints = list(result.checkpoints) if result else []
    return Prepared(task, ctx, spec, result)


def prepare_logged(cfg: DictConfig, run_dir: Path, *, need_model: bool = True) -> Prepared:
    """:func:`prepare` with the finetune stage logged (config, losses, timings) as its own W&B / CSV run."""
    from rise_exp.run_logging import close_loggers, log_summary, make_loggers

    if not need_model:
        return prepare(cfg, run_dir, need_model=False)
    loggers = make_loggers(cfg.logger, run_dir, name="finetune", group=str(cfg.task.name), config=to_dict(cfg))
    prep = prepare(cfg, run_dir, loggers=loggers)
    if prep.finetune is not None:
        log_summary(loggers, {**prep.finetune.metrics, "finetune/cached": float(prep.finetune.cached)})
    close_loggers(loggers)
    return prep
