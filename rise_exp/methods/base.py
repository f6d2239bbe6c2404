"""The one interface every attribution method implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rise_exp.data.records import Record


@dataclass
class MethodContext:
    """What a method may use; tasks and metrics are invisible to it.

    Attributes:
        model: The (finetuned) Hugging Face causal LM, in eval mode.
        tokenizer: Its tokenizer (a ``PreTrainedTokenizerFast``).
        checkpoints: Saved HF checkpoint directories of the finetuning trajectory, oldest first.
        work_dir: A directory the method may write its index or state into.
        model_id: A string identifying the model (hub id + revision, or embedded config hash).
        trainer: Settings for Lightning ``Trainer`` construction (accelerator, devices, strategy, precision).
        max_length: Maximum tokens per row before chunking.
        mask_prompt: Whether prompt tokens of instruction rows are excluded from what methods score
            (``data.attribute_mask_prompt``; the same for every method).
        seed: Global seed.
    """

    model: Any
    tokenizer: Any
    work_dir: Path
    checkpoints: list[Path] = field(default_factory=list)
    model_id: str = ""
    trainer: dict[str, Any] = field(default_factory=dict)
    max_length: int = 512
    mask_prompt: bool = False
    seed: int = 42


class AttributionMethod(ABC):
    """Build state from a training pool, then score queries against every row.

    Subclasses set ``name`` and implement :meth:`build` and :meth:`score`. ``index_bytes`` reports the
    storage the built state takes (for the cost tables).
    """

    name: str = "base"

    def __init__(self, cfg: Any, ctx: MethodContext) -> None:
        self.cfg = cfg
        self.ctx = ctx
        self.index_bytes: int = 0

    @abstractmethod
    def build(self, train: Sequence[Record]) -> None:
        """Index or prepare state for the training pool (rows keep their order)."""

    @abstractmethod
    def score(self, queries: Sequence[Record]) -> np.ndarray:
        """Influence scores, float32 ``[num_queries, num_train]``; higher = more influential."""

    def value(self, targets: Sequence[Record], mode: str = "mean") -> np.ndarray:
        """Zero-shot value of every built row against a target set, float32 ``[num_train]``.

        ``mean`` averages the query score rows; ``rrf`` fuses per-query rankings by reciprocal rank.
        Methods with signatures override this to score against the mean signature.
        """
        from rise_exp.valuation import fuse_scores

        return fuse_scores(self.score(targets), mode=mode)
