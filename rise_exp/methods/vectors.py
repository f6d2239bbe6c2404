"""Methods whose state is one vector per training row, kept in an on-disk :class:`SignatureIndex`.

The base class owns the index: it encodes the pool, writes (or resumes, or reuses) the index under
a manifest that names the method settings, the model and the exact tokens, and answers scores,
streaming top-k and valuation from it. A subclass says how vectors are computed:
:meth:`VectorIndexMethod.compute_into` (write the vectors of some rows into the index) and
:meth:`VectorIndexMethod.query_vectors`.
"""

from __future__ import annotations

import hashlib
import logging
from abc import abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rise_exp.data.encoding import EncodedRow
from rise_exp.data.records import Record
from rise_exp.index import IndexWriter, SignatureIndex
from rise_exp.methods.base import AttributionMethod
from rise_exp.search import all_scores, topk
from rise_exp.valuation import value_against_index

log = logging.getLogger(__name__)


def rows_hash(rows: Sequence[EncodedRow]) -> str:
    """Hash of the exact token ids and target masks an index is computed from."""
    h = hashlib.sha256()
    for r in rows:
        h.update(r.input_ids.tobytes())
        h.update(np.packbits(r.target_mask).tobytes())
        h.update(b"|")
    return h.hexdigest()[:16]


class VectorIndexMethod(AttributionMethod):
    """An attribution method that stores one vector per row; influence = inner product of vectors."""

    #: Storage dtype of the vectors (a subclass or its settings decide).
    dtype: str = "float32"

    def __init__(self, cfg: Any, ctx: Any) -> None:
        super().__init__(cfg, ctx)
        self.index: SignatureIndex | None = None
        self.row_ids: list[str] = []

    # ------------------------------------------------------------------ what a subclass provides
    @abstractmethod
    def encode(self, records: Sequence[Record], role: str) -> list[EncodedRow]:
        """Encode training rows (``role="train"``) or queries (``role="query"``); ``row`` = position."""

    @property
    @abstractmethod
    def dim(self) -> int:
        """Vector length."""

    @abstractmethod
    def identity(self) -> dict[str, Any]:
        """The settings the vectors depend on (stored in the manifest; a change means a new index)."""

    def tables(self) -> Mapping[str, torch.Tensor] | None:
        """Random tables the vectors depend on, saved with the index (e.g. sketches); None by default."""
        return None

    @abstractmethod
    def compute_into(self, rows: Sequence[EncodedRow], path: Path, writer_args: dict[str, Any]) -> None:
        """Compute the vectors of ``rows`` and write them as blocks of the index at ``path``.

        ``writer_args`` are the :class:`IndexWriter` arguments of this build (resume is implied).
        """

    @abstractmethod
    def query_vectors(self, records: Sequence[Record]) -> np.ndarray:
        """Vectors of queries or targets, float32 ``[n, dim]``."""

    @abstractmethod
    def index_settings(self) -> tuple[str | None, int, bool]:
        """``(directory or None for the default, rows per block, reuse)``."""

    # ------------------------------------------------------------------ the index
    def index_dir(self) -> Path:
        """Where the index lives: the configured directory, else ``<work dir>/<name>_index``."""
        path, _, _ = self.index_settings()
        return Path(path) if path else Path(self.ctx.work_dir) / f"{self.name}_index"

    def build(self, train: Sequence[Record]) -> None:
        """Write (or resume, or reuse) the index of ``train``, then open it."""
        rows = self.encode(train, "train")
        self.row_ids = [r.id for r in train]
        _, block_rows, reuse = self.index_settings()
        manifest = {
            "method": {"name": self.name, **self.identity()},
            "model": self.ctx.model_id,
            "data_hash": rows_hash(rows),
        }
        path = self.index_dir()
        writer_args = dict(
            dim=self.dim,
            num_rows=len(rows),
            manifest=manifest,
            tables=self.tables(),
            dtype=self.dtype,
            block_rows=block_rows,
        )
        writer = IndexWriter(path, resume=reuse, **writer_args)
        pending = writer.pending_rows()
        if len(pending):
            log.info("%s: indexing %d of %d rows into %s", self.name, len(pending), len(rows), path)
            self.compute_into([rows[i] for i in pending], path, writer_args)
        if not _is_complete(path):
            IndexWriter(path, resume=True, **writer_args).finalize()
        self.index = SignatureIndex.open(path)
        self.index_bytes = int(self.index.nbytes)

    def require_index(self) -> SignatureIndex:
        """The built index (raises if :meth:`build` has not run)."""
        if self.index is None:
            raise RuntimeError(f"{type(self).__name__}.build must run before scoring")
        return self.index

    # ------------------------------------------------------------------ answers
    def score(self, queries: Sequence[Record]) -> np.ndarray:
        return all_scores(self.require_index(), self.query_vectors(queries))

    def topk(self, queries: Sequence[Record], k: int, largest: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Streaming exact top-k ``(scores, rows)`` ``[Q, k]`` without a dense score matrix."""
        return topk(self.require_index(), self.query_vectors(queries), k, largest=largest)

    def value(self, targets: Sequence[Record], mode: str = "mean") -> np.ndarray:
        """Mean score over the targets (one pass against their mean vector), or reciprocal-rank fusion."""
        return value_against_index(self.require_index(), self.query_vectors(targets), mode)


def _is_complete(path: Path) -> bool:
    import json

    try:
        return json.loads((path / "manifest.json").read_text()).get("status") == "complete"
    except (OSError, ValueError):
        return False
