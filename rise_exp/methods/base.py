"""The one interface every attribution method implements, and what a method may use."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np

from rise_exp.config.model import ModelConfig
from rise_exp.config.run_settings import DEFAULT_SEED, DataConfig
from rise_exp.config.settings import Settings
from rise_exp.config.trainer import TrainerConfig
from rise_exp.data.records import Record
from rise_exp.methods.explanation import PairExplanation
from rise_exp.models.placement import Placement

#: Ensemble member ``e`` of a method draws its random tables from ``seed + e * MEMBER_SEED_STRIDE``.
MEMBER_SEED_STRIDE = 1000
S = TypeVar("S", bound=Settings)


def member_seed(seed: int, member: int) -> int:
    """The seed ensemble member ``member`` of a method seeded ``seed`` draws its random tables from."""
    return seed + member * MEMBER_SEED_STRIDE


def seeded(cfg: S, seed: int) -> S:
    """Every method's seed rule: a ``seed`` setting left null (the default) is the global ``seed``."""
    if getattr(cfg, "seed", 0) is None:
        return cfg.replace(seed=seed)
    return cfg


@dataclass
class MethodContext:
    """What a method may use; tasks and metrics are invisible to it.

    Attributes:
        model: The (finetuned) Hugging Face causal LM, in eval mode (None for model-free methods).
        tokenizer: Its tokenizer (a ``PreTrainedTokenizerFast``).
        work_dir: A directory the method may write its index or state into.
        checkpoints: Saved HF checkpoint directories of the finetuning trajectory, oldest first.
        model_id: A string identifying the model (hub id + revision, or embedded config hash).
        trainer: Settings for Lightning ``Trainer`` construction.
        max_length: Maximum tokens per row (``data.max_length``; the gradient baselines truncate; RISE chunks).
        mask_prompt: Whether prompt tokens of instruction rows are excluded from what methods score
            (``data.attribute_mask_prompt``; the same for every method unless it overrides it per role:
            :meth:`AttributionMethod.masks_prompt`).
        seed: Global seed (a method's own ``seed: null`` falls back to it: :func:`seeded`).
        index_root: Where indexes live by default (``<cache>/indexes``; None: the work dir).
        data_name: What the pool is called (part of a default index directory's name).
        run_names: The building run's task, data and model names (``{"task", "data", "model"}``), stored in
            index manifests so that runs answering from the index are named by what it holds.
        model_path: Where the weights the method sees were loaded from (recorded in index manifests, so a
            later run can answer queries from the index alone).
        model_dtype: Their dtype name.
        placement: Where the model was placed and the autocast of its forward passes
            (``models/placement.py``); methods compute on ``model_device(model)`` under ``placement.autocast()``.
    """

    model: Any
    tokenizer: Any
    work_dir: Path
    checkpoints: list[Path] = field(default_factory=list)
    model_id: str = ""
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    max_length: int = DataConfig.max_length
    mask_prompt: bool = DataConfig.attribute_mask_prompt
    seed: int = DEFAULT_SEED
    index_root: Path | None = None
    data_name: str = "data"
    run_names: dict[str, str] = field(default_factory=dict)
    model_path: str | None = None
    model_revision: str | None = None
    model_dtype: str = ModelConfig.dtype
    placement: Placement | None = None


class AttributionMethod(ABC):
    """Build state from a training pool, then score queries against every row.

    Subclasses set the class facts below and implement :meth:`build` and :meth:`score`;
    ``index_bytes`` reports the storage the built state takes (for the cost tables).

    Attributes:
        name: Registry name (``method.name``).
        needs_model: False for model-free methods (BM25): no model is loaded or finetuned.
        needs_checkpoints: True when the method reads the finetuning trajectory (ZO-Inf).
        share_unit: What per-token explanations split a score over (``token`` or ``word``).
    """

    name: ClassVar[str] = "base"
    needs_model: ClassVar[bool] = True
    needs_checkpoints: ClassVar[bool] = False
    #: What :meth:`explain` splits a score over: model tokens, or words (BM25).
    share_unit: ClassVar[str] = "token"

    def __init__(self, cfg: Settings | Mapping[str, Any], ctx: MethodContext) -> None:
        if not isinstance(cfg, Settings):  # a plain mapping of settings: check it like the CLI does
            from rise_exp.methods.registry import config_class

            cfg = config_class(self.name).from_mapping({"name": self.name, **dict(cfg)})
        self.cfg: Any = seeded(cfg, ctx.seed)
        self.ctx = ctx
        self.index_bytes: int = 0

    def masks_prompt(self, role: str) -> bool:
        """Whether prompt tokens of ``role`` rows (``"train"`` or ``"query"``) are left out of what the method
        scores: the run's ``data.attribute_mask_prompt`` (``ctx.mask_prompt``), unless the method's settings
        override it for that role (``method.mask_train_prompt`` / ``method.mask_query_prompt``)."""
        own = getattr(self.cfg, f"mask_{role}_prompt", None)
        return bool(self.ctx.mask_prompt if own is None else own)

    @abstractmethod
    def build(self, train: Sequence[Record]) -> None:
        """Index or prepare state for the training pool (rows keep their order)."""

    @abstractmethod
    def score(self, queries: Sequence[Record]) -> np.ndarray:
        """Influence scores, float32 ``[num_queries, num_train]``; higher = more influential."""

    def explain_unavailable(self) -> str | None:
        """None when :meth:`explain` splits this method's scores into exact per-token shares; otherwise
        why it cannot (written to explain.jsonl and the results page)."""
        return f"{self.name}: its scores are not a sum over token pairs, so it has no per-token shares"

    def explain(
        self, queries: Sequence[Record], rows: Sequence[Sequence[int]], pool: Sequence[Record] | None = None
    ) -> list[list[PairExplanation]]:
        """The query-token and row-token shares of the score of ``queries[q]`` and pool row ``rows[q][j]``
        (:mod:`~rise_exp.methods.explanation`), each side summing to the pair's score. ``pool`` is the
        built pool when the caller has it (a method whose index keeps the rows' tokens does not need it).

        Raises:
            NotImplementedError: the method has no per-token shares (:meth:`explain_unavailable` says why).
        """
        raise NotImplementedError(self.explain_unavailable())

    def value(self, targets: Sequence[Record], mode: str = "mean") -> np.ndarray:
        """Zero-shot value of every built row against a target set, float32 ``[num_train]``.

        ``mean`` averages the query score rows; ``rrf`` fuses per-query rankings by reciprocal rank.
        """
        from rise_exp.retrieval.valuation import fuse_scores

        return fuse_scores(self.score(targets), mode=mode)
