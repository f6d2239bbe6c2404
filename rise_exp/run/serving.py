"""Answering from an existing index: rebuild the method an index was made with, from its manifest alone.

A vector index's manifest names the method settings, the model identity and how to serve it (the
weights' path, dtype and the query token rule; :meth:`VectorIndexMethod.serving`), so ``stage=query``,
``stage=valuate`` and ``stage=select`` with ``stage.index=<dir>`` need neither the training data, nor
tokenizer training, nor a finetune. A BM25 index holds its own settings and row texts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rise_exp.config.trainer import TrainerConfig
from rise_exp.core.errors import ConfigError, DataError, IndexError_
from rise_exp.data.arrow_pool import open_pool
from rise_exp.data.records import Record
from rise_exp.index.run_names import read_manifest_json
from rise_exp.methods.base import AttributionMethod, MethodContext
from rise_exp.methods.registry import METHODS, build_method, config_class
from rise_exp.models.placement import decide


def read_manifest(path: str | Path) -> dict[str, Any]:
    """The ``manifest.json`` of an index directory built by a known method (clear errors for anything else)."""
    manifest = read_manifest_json(path)
    name = manifest["method"].get("name")
    if name not in METHODS:
        raise IndexError_(f"{Path(path) / 'manifest.json'}: names no known method (method.name {name!r})")
    return manifest


def _settings(name: str, stored: Mapping[str, Any], **extra: Any) -> Any:
    cls = config_class(name)
    fields = set(cls.field_names())
    return cls.from_mapping({**{k: v for k, v in stored.items() if k in fields}, **extra, "name": name})


def open_index_method(path: str | Path, work_dir: Path, trainer: TrainerConfig | None = None) -> AttributionMethod:
    """The method that built the index at ``path``, attached to it, with the model its manifest names.

    Raises:
        IndexError_: not an index, unfinished, or without what serving needs.
        ConfigError: the model it names cannot be loaded.
    """
    manifest = read_manifest(path)
    name = manifest["method"]["name"]
    trainer = trainer or TrainerConfig()
    ctx = MethodContext(model=None, tokenizer=None, work_dir=Path(work_dir), trainer=trainer, placement=decide(trainer))
    if name == "bm25":
        method = build_method(_settings(name, manifest["method"], dir=str(path)), ctx)
        method.attach(path)
        return method
    serving = manifest.get("serving")
    if not isinstance(serving, dict) or not serving.get("model_path"):
        raise IndexError_(
            f"{path}: the manifest does not say which model serves it (no serving.model_path); "
            f"rebuild the index with this version of rise-exp"
        )
    from rise_exp.models.loading import load_pretrained

    # a serving field the manifest lacks (an older index) falls back to MethodContext's default
    ctx.model_path, ctx.model_dtype = serving["model_path"], serving.get("model_dtype", ctx.model_dtype)
    assert ctx.placement is not None
    model, tokenizer = load_pretrained(
        ctx.model_path, revision=serving.get("model_revision"), dtype=ctx.model_dtype, **ctx.placement.load_kwargs()
    )
    ctx.model, ctx.tokenizer, ctx.model_id = ctx.placement.place(model.eval()), tokenizer, manifest.get("model", "")
    ctx.max_length = int(serving.get("max_length", ctx.max_length))
    ctx.mask_prompt = bool(serving.get("query_mask_prompt"))  # the query token rule the index was built with
    method = build_method(_settings(name, manifest["method"]), ctx)
    method.attach(path)
    return method


def query_records(path: str | None, texts: Sequence[str], fields: Mapping[str, str] | None = None) -> list[Record]:
    """Queries (or targets) from a JSONL / JSON file or hub spec, plus inline texts (always loaded: they are few)."""
    out = list(open_pool(path, fields=fields, stream=False)) if path else []
    out += [Record(id=f"query-{i}", text=t) for i, t in enumerate(texts)]
    if not out:
        raise ConfigError("no queries: set stage.queries_path (a JSONL / JSON file) or stage.query_texts")
    return out


def stage_queries(stage: Any, default: Sequence[Record] | None = None) -> Sequence[Record]:
    """The queries (or targets) a stage names (``stage.queries_path``, ``stage.query_texts``); ``default`` (the
    task's) when it names none."""
    if default is not None and not (stage.queries_path or stage.query_texts):
        return default
    return query_records(stage.queries_path, stage.query_texts, stage.query_fields)


def rows_meta(method: AttributionMethod, rows: Sequence[int], pool: Sequence[Record] | None = None) -> list[dict]:
    """Id and text preview of pool rows: from the pool when given, else from the method's index."""
    if pool is not None:
        return [{"id": pool[i].id, "preview": pool[i].full_text[:200]} for i in rows]
    index = getattr(method, "index", None)
    if index is not None:
        return index.rows_meta(rows)
    if hasattr(method, "rows_meta"):
        return method.rows_meta(rows)
    raise DataError(f"method {method.name} keeps no row metadata; give the pool")


def top_rows(
    method: AttributionMethod, queries: Sequence[Record], k: int, search: Any = None
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best rows per query ``(scores, rows)``: streamed from an index (through the ``search``
    backend), else from the dense scores."""
    from rise_exp.run.runner import placed

    with placed(method.ctx):  # the query vectors in the placement's precision, like the index's
        if hasattr(method, "topk") and getattr(method, "index", None) is not None:
            return method.topk(queries, k, search=search)
        scores = np.asarray(method.score(queries), dtype=np.float32)
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, order, axis=1), order


@dataclass(frozen=True)
class Answering:
    """What a stage that answers queries works with: the method, the queries, where its index lives, and
    the prepared task (None when answering from ``stage.index`` alone)."""

    method: AttributionMethod
    queries: list[Record]
    where: str
    task: Any = None


def answering(run: Any, run_dir: Path) -> Answering:
    """The method and queries of ``stage=query`` / ``stage=explain``: from ``stage.index`` (the manifest's
    method and model; queries from ``stage.queries_path`` / ``stage.query_texts``), else the configured task's
    index, built or reused from the cache (queries default to the task's)."""
    st = run.stage
    if st.index:
        method = open_index_method(st.index, Path(run_dir) / "method", run.trainer)
        return Answering(method, stage_queries(st), str(Path(st.index)))
    from rise_exp.run.pipeline import prepare_for_method  # task, model, finetune: not needed from an index
    from rise_exp.run.runner import build_on

    prep = prepare_for_method(run, Path(run_dir))
    method = build_on(run.method, prep.ctx, prep.task.train).method
    index = getattr(method, "index", None)
    where = str(index.root) if index is not None else str(getattr(method, "index_path", ""))
    return Answering(method, stage_queries(st, prep.task.queries), where, prep.task)
