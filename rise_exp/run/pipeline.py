"""Shared preparation of a run: task data, starting model, (cached) finetuning, method context."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rise_exp.core.hashing import config_hash
from rise_exp.core.results import write_json
from rise_exp.counterfactual.retrain import Retrainer
from rise_exp.data.records import Record
from rise_exp.data.task_builders import Task, build_task
from rise_exp.methods.base import MethodContext
from rise_exp.methods.registry import method_class
from rise_exp.models.identity import identify_model
from rise_exp.models.loading import load_pretrained
from rise_exp.models.placement import decide
from rise_exp.models.weights import load_base_model, split_kwargs, start_weights
from rise_exp.run.config import RunConfig
from rise_exp.training.cached_finetune import FinetuneResult, finetune_key, run_finetune

log = logging.getLogger(__name__)
#: Written into a run's directory: which weights the run used (``model_id``, ``model_path``, ``model_revision``).
MODEL_JSON = "model.json"


@dataclass
class Prepared:
    """Everything a stage needs after data and model preparation."""

    task: Task
    ctx: MethodContext
    finetune: FinetuneResult | None


class PoolTexts(Sequence[str]):
    """The ``full_text`` of each pool row, read on access (a streamed pool is never held as texts)."""

    def __init__(self, records: Sequence[Record]) -> None:
        self.records = records

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> str:  # type: ignore[override]
        return self.records[int(i)].full_text

    def __iter__(self) -> Iterator[str]:
        return (r.full_text for r in self.records)


def tokenizer_texts(task: Task) -> Sequence[str]:
    """Text an embedded model's tokenizer is trained on: the training pool only, so that new queries (or
    targets, or held-out sets) never invalidate the tokenizer, the model, its finetune or an index."""
    return PoolTexts(task.train)


def method_context(run: RunConfig, run_dir: Path, data_name: str = "data") -> MethodContext:
    """The context of a method before a model is loaded (model-free methods keep it as it is)."""
    return MethodContext(
        model=None,
        tokenizer=None,
        work_dir=run_dir / "method",
        seed=run.seed,
        trainer=run.trainer,
        max_length=run.data.max_length,
        mask_prompt=run.data.attribute_mask_prompt,
        index_root=Path(run.paths.cache_dir).resolve() / "indexes",
        data_name=data_name,
        run_names={"task": run.task.name, "data": data_name, "model": run.model.name},
        model_dtype=run.model.dtype,
        placement=decide(run.trainer, run.model),
    )


def prepare(run: RunConfig, run_dir: Path, *, need_model: bool = True, loggers: list[Any] | None = None) -> Prepared:
    """Build the task, load the model, finetune it (cached) and return the method context.

    Args:
        run: The typed run config.
        run_dir: The Hydra run directory.
        need_model: False for model-free methods (BM25): no model is loaded or trained.
        loggers: Lightning loggers for the finetune stage.
    """
    task = build_task(run.task)
    log.info("task %s: %d train rows, %d queries", task.name, len(task.train), len(task.queries))
    ctx = method_context(run, run_dir, data_name=run.task.data_name)
    if not need_model:
        return Prepared(task, ctx, None)

    cache = Path(run.paths.cache_dir).resolve()  # absolute: adapters and checkpoints record their base path
    trains = run.finetune.epochs > 0  # gradient work loads the whole model (split: trainer=fsdp), never dispatched
    assert ctx.placement is not None  # a model that only computes is read straight onto its GPU
    direct = {} if trains else ctx.placement.load_kwargs()
    model, tokenizer, source = load_base_model(run.model, tokenizer_texts(task), cache, split=not trains, **direct)
    identity = identify_model(run.model, source, cache)  # from the weights: keys the finetune cache and index
    result: FinetuneResult | None = None
    model_id = identity
    if run.finetune.epochs > 0:
        texts_hash = config_hash([r.full_text for r in task.train], n=16)  # as formatted for training
        key = finetune_key(identity, f"{task.pool_hash()}:{texts_hash}", run.finetune)
        result = run_finetune(
            model,
            tokenizer,
            task.train,
            cfg=run.finetune,
            trainer=run.trainer,
            out_dir=cache / "finetune" / key,
            loggers=loggers or [],
        )
        if result.cached:
            log.info("reusing cached finetune %s", result.final_dir)
        # every rank computes its share of the method with the whole model (or model.device_map's split), so
        # every rank reloads it: from memory-mapped shards into an empty model, on a GPU straight into its memory
        place = split_kwargs(run.model, cache) or ctx.placement.load_kwargs()
        model, tokenizer = load_pretrained(result.final_dir, dtype=run.model.dtype, **place)
        model_id = f"{identity}+finetune:{key}"
    assert ctx.placement is not None
    model = ctx.placement.place(model.eval())  # the one move: every stage and method computes here
    ctx.model, ctx.tokenizer, ctx.model_id = model, tokenizer, model_id
    ctx.model_path = str(result.final_dir if result is not None else source)
    ctx.model_revision = None if result is not None else run.model.revision
    ctx.checkpoints = list(result.checkpoints) if result else []
    if Path(run_dir).is_dir():  # provenance: the weights this run used (a finetune's directory, for chaining)
        write_json(
            Path(run_dir) / MODEL_JSON,
            {"model_id": model_id, "model_path": ctx.model_path, "model_revision": ctx.model_revision},
        )
    return Prepared(task, ctx, result)


def prepare_logged(run: RunConfig, run_dir: Path, *, need_model: bool = True) -> Prepared:
    """:func:`prepare` with the finetune stage logged (config, losses, timings) as its own W&B / CSV run."""
    from rise_exp.run.loggers import close_loggers, log_summary, make_loggers

    if not need_model:
        return prepare(run, run_dir, need_model=False)
    loggers = make_loggers(run.logger, run_dir, name="finetune", group=run.task.name, config=run.raw)
    prep = prepare(run, run_dir, loggers=loggers)
    if prep.finetune is not None:
        log_summary(loggers, {**prep.finetune.metrics, "finetune/cached": float(prep.finetune.cached)})
    close_loggers(loggers)
    return prep


def method_needs_model(run: RunConfig) -> bool:
    """Whether the run's own method needs a model (a model-free one, BM25, gets no model and no finetune)."""
    return method_class(run.method.name).needs_model


def prepare_for_method(run: RunConfig, run_dir: Path) -> Prepared:
    """:func:`prepare_logged` for a stage that runs the run's own method: a model only if it needs one."""
    return prepare_logged(run, run_dir, need_model=method_needs_model(run))


def prepare_retrainable(run: RunConfig, run_dir: Path) -> Prepared:
    """The preparation of a counterfactual stage: refuse a finetune that does not train
    (:meth:`RunConfig.check_retrainable`), create ``run_dir``, then :func:`prepare_logged`."""
    run.check_retrainable()
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    return prepare_logged(run, Path(run_dir))


def make_retrainer(run: RunConfig, task: Task, run_dir: Path) -> Retrainer:
    """The retrainer of the counterfactual stages: fresh copies of the run's starting model (before its
    finetune), trained with the run's finetune settings, measured on the task's queries.

    Raises:
        ConfigError: ``finetune.epochs`` is 0 (:meth:`RunConfig.check_retrainable`).
    """
    run.check_retrainable()
    cache = Path(run.paths.cache_dir).resolve()
    texts = tokenizer_texts(task)
    source, _ = start_weights(run.model, texts, cache)

    def start() -> tuple[Any, Any]:
        model, tokenizer, _ = load_base_model(run.model, texts, cache)
        return model, tokenizer

    return Retrainer(
        start=start,
        identity=identify_model(run.model, source, cache),
        pool=task.train,
        queries=task.queries,
        finetune=run.finetune,
        trainer=run.trainer,
        retrain=run.stage.retrain,
        max_length=run.data.max_length,
        cache_dir=cache / "retrain",
        work_dir=run_dir / "retrain",
    )
