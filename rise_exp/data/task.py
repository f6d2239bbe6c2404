"""The :class:`Task` every stage consumes (pool, queries, labels, extras) and label extraction."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from rise_exp.core.errors import DataError
from rise_exp.data.arrow_pool import ArrowPool, records_json_hash, update_records_json
from rise_exp.data.records import Record


@dataclass
class Task:
    """A training pool with (optional) relevance labels, the queries, and evaluation extras.

    Attributes:
        name: Task name (``howdy``, ``finance_medical``, ``brain_rot``, ``custom``).
        train: The training pool (a list, or an :class:`~rise_exp.data.arrow_pool.ArrowPool` read lazily).
        queries: Query records.
        labels: 0/1 ints, ``[N]`` shared by all queries or ``[Q, N]`` per query; None for unlabelled data
            (stages then write rankings only).
        candidates: Valuation pool (defaults to ``train``).
        heldout: Named extra sets, e.g. ``{"high": [...], "junk": [...]}`` for Brain Rot perplexity.
        positive: What label 1 means, e.g. ``"backdoored"``.
        title: What the data is called in titles (defaults to ``name``).
    """

    name: str
    train: Sequence[Record]
    queries: list[Record]
    labels: np.ndarray | None
    candidates: Sequence[Record] = field(default_factory=list)
    heldout: dict[str, list[Record]] = field(default_factory=dict)
    positive: str = "positive"
    title: str = ""

    def __post_init__(self) -> None:
        if len(self.train) == 0:
            raise DataError(f"task {self.name!r}: the training pool is empty")
        self.title = self.title or self.name
        if len(self.candidates) == 0:
            self.candidates = self.train if isinstance(self.train, ArrowPool) else list(self.train)
        if self.labels is None:
            return
        self.labels = np.asarray(self.labels, dtype=np.int64)
        n, q = len(self.train), len(self.queries)
        if self.labels.shape not in ((n,), (q, n)):
            raise DataError(f"task {self.name!r}: labels of shape {self.labels.shape}; expected ({n},) or ({q}, {n})")
        if not np.isin(self.labels, (0, 1)).all():
            raise DataError(f"task {self.name!r}: labels must be 0/1")

    @property
    def labelled(self) -> bool:
        """Whether the pool carries relevance labels (metrics can be computed)."""
        return self.labels is not None

    def data_hash(self) -> str:
        """A stable 16-hex-digit hash of the train and query contents (ids, texts, labels, meta): sha256 of
        ``json.dumps({"queries": [...], "train": [...]}, sort_keys=True)``, streamed row by row."""
        h = hashlib.sha256(b'{"queries": ')
        update_records_json(h, self.queries)
        h.update(b', "train": ')
        update_records_json(h, self.train)
        h.update(b"}")
        return h.hexdigest()[:16]

    def pool_hash(self) -> str:
        """A stable 16-hex-digit hash of the training pool alone (what a finetune depends on)."""
        if isinstance(self.train, ArrowPool):
            return self.train.json_hash()
        return records_json_hash(self.train)

    def candidate_labels(self) -> np.ndarray | None:
        """0/1 labels of the valuation pool; None when no candidate carries one (a partial labelling is an error)."""
        if all(r.label is None for r in self.candidates):
            return None
        return record_labels(self.candidates, f"task {self.name} candidates")


def record_labels(records: Sequence[Record], what: str) -> np.ndarray:
    """0/1 labels of ``records`` as int64 ``[n]``; every record must carry one.

    Raises:
        DataError: naming ``what`` (e.g. ``"task howdy candidates"``) and the first unlabelled row.
    """
    missing = [r.id for r in records if r.label is None]
    if missing:
        raise DataError(f"{what}: {len(missing)} rows have no 0/1 label (first: {missing[0]!r})")
    return np.asarray([int(r.label) for r in records], dtype=np.int64)
