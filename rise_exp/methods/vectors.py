"""Methods whose state is one vector per training row, kept in an on-disk :class:`SignatureIndex`.

The base class owns the index: it encodes the pool, plans its batches once (a
:class:`~rise_exp.index.BatchPlan`, stored with the index), writes (or resumes, reuses or rebuilds) the
index under a manifest that names the method settings, the model and the exact tokens, and answers
scores, streaming top-k and valuation from it. A subclass says how vectors are computed:
:meth:`VectorIndexMethod.plan_batches` (which rows are computed together),
:meth:`VectorIndexMethod.compute_blocks` (write the vectors of the :class:`PendingBlocks` into the index)
and :meth:`VectorIndexMethod.query_vectors`.

Every build, resume and data-parallel rank follows the stored plan, so a resumed or distributed build
writes the same bytes as a clean single-process one. ``reuse=false`` builds into a fresh sibling
directory (``<dir>.rebuild``) and replaces the old index only once the new one is complete. The index
directory is locked (``<dir>.lock``) while it is built, so concurrent runs never build it twice.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from abc import abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from rise_exp.core.errors import ConfigError, DataError, IndexError_
from rise_exp.core.hashing import config_hash
from rise_exp.core.locks import cache_lock, launched_rank
from rise_exp.core.names import safe_component
from rise_exp.data.encoding import EncodedRow, rows_hash
from rise_exp.data.records import Record
from rise_exp.index import MANIFEST, BatchPlan, IndexWriter, SignatureIndex, manifest_diff, tables_sha256
from rise_exp.index.files import foreign_entries
from rise_exp.index.files import jsonable as _jsonable
from rise_exp.lightning.sharding import distributed_barrier
from rise_exp.methods.base import AttributionMethod, member_seed
from rise_exp.retrieval.ann import Searcher, open_searcher
from rise_exp.retrieval.search import all_scores
from rise_exp.retrieval.valuation import value_against_index

log = logging.getLogger(__name__)

#: Characters of each row's text kept in the index metadata (query answers show them without the pool).
PREVIEW_CHARS = 200
#: Pools below this size store each row's token ids and target mask in the index (``store_tokens: null``).
STORE_TOKENS_MAX_ROWS = 100_000


def stores_tokens(num_rows: int, setting: bool | None) -> bool:
    """Whether a build keeps each row's tokens: the ``store_tokens`` setting, or (null) pools under
    :data:`STORE_TOKENS_MAX_ROWS` rows."""
    return num_rows < STORE_TOKENS_MAX_ROWS if setting is None else bool(setting)


@dataclass(frozen=True)
class PendingBlocks:
    """What a build still has to compute, and where it goes.

    Attributes:
        rows: The whole encoded pool (``row`` = position; read by position only).
        plan: The batch plan to follow.
        blocks: The planned blocks to compute, in order.
        path: The index directory (open it with ``resume=True``).
        writer_args: The :class:`IndexWriter` arguments of this build.
    """

    rows: Sequence[EncodedRow]
    plan: BatchPlan
    blocks: Sequence[int]
    path: Path
    writer_args: dict[str, Any]

    @property
    def num_rows(self) -> int:
        """Rows the pending blocks hold."""
        return sum(len(self.plan.block_rows(b)) for b in self.blocks)


class IndexSettings(Protocol):
    """The index settings of a vector method (e.g. ``method.index`` of RISE, ``method`` of RapidIn)."""

    dir: str | None
    block_rows: int
    reuse: bool
    store_tokens: bool | None

    def key(self, name: str) -> str: ...


class VectorIndexMethod(AttributionMethod):
    """An attribution method that stores one vector per row; influence = inner product of vectors."""

    #: Storage dtype of the vectors (a subclass or its settings decide).
    dtype: str = "float32"

    def __init__(self, cfg: Any, ctx: Any) -> None:
        super().__init__(cfg, ctx)
        self.index: SignatureIndex | None = None
        self.row_meta: Sequence[dict[str, Any]] = []

    # ------------------------------------------------------------------ what a subclass provides
    @abstractmethod
    def encode(self, records: Sequence[Record], role: str) -> Sequence[EncodedRow]:
        """Encode training rows (``role="train"``) or queries (``role="query"``); ``row`` = position.

        A pool may be returned lazily (an :class:`~rise_exp.data.encoding.EncodedPool`): the build reads
        it in streamed passes and by position only."""

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

    def plan_batches(self, rows: Sequence[EncodedRow]) -> list[list[int]]:
        """Row ids computed together, batch by batch, in compute order (default: one row per batch)."""
        return [[r.row] for r in rows]

    def plan_params(self) -> dict[str, Any]:
        """The settings :meth:`plan_batches` depends on (recorded in the plan)."""
        return {}

    @abstractmethod
    def compute_blocks(self, work: PendingBlocks) -> None:
        """Compute the planned blocks of ``work`` (batches in plan order) and write them to its index directory."""

    @abstractmethod
    def query_vectors(self, records: Sequence[Record]) -> np.ndarray:
        """Vectors of queries or targets, float32 ``[n, dim]``."""

    @abstractmethod
    def index_settings(self) -> IndexSettings:
        """The settings object holding ``dir``, ``block_rows`` and ``reuse`` (its ``key`` names them)."""

    def member_seeds(self) -> list[int]:
        """The seed of each ensemble member stored side by side in every vector (equal slices, member 0
        first), from the settings ``ensemble`` and ``seed`` (:func:`member_seed`); empty for a method without
        members. The ensemble's score is the mean of the members'."""
        n = getattr(self.cfg, "ensemble", 1)
        return [member_seed(self.cfg.seed, e) for e in range(n)] if n > 1 else []

    def member_scale(self) -> float:
        """The factor that turns a member slice's inner product into that member's own score."""
        return 1.0

    # ------------------------------------------------------------------ ensemble members
    def member_scores(self, queries: Sequence[Record]) -> dict[int, np.ndarray]:
        """Each ensemble member's own scores ``[Q, N]``, keyed by its seed, from the one index: member ``e``
        is the ``e``-th equal slice of every vector, so E seeds of a pool cost one pass over it.

        Raises:
            ConfigError: the method stores no ensemble members.
        """
        members = self.member_seeds()
        if len(members) < 2:
            raise ConfigError(f"method={self.name} holds no ensemble members (set method.ensemble >= 2)")
        index, width, scale = self.require_index(), self.dim // len(members), self.member_scale()
        q = self.query_vectors(queries)
        out = {seed: np.zeros((q.shape[0], index.num_rows), dtype=np.float32) for seed in members}
        for rows, vecs in index.iter_blocks():
            vecs = np.asarray(vecs, dtype=np.float32)
            for e, seed in enumerate(members):
                cols = slice(e * width, (e + 1) * width)
                out[seed][:, rows] = scale * (q[:, cols] @ vecs[:, cols].T)
        return out

    # ------------------------------------------------------------------ the index
    def index_dir(self, data_hash: str = "") -> Path:
        """Where the index lives: the configured directory, else a directory of the index cache
        (``<cache>/indexes/<data>-<method>-<key>``, the key hashing the model, the method settings and the
        exact tokens), so that any later run needing the same vectors finds them."""
        path = self.index_settings().dir
        if path:
            return Path(path)
        if self.ctx.index_root is None:
            return Path(self.ctx.work_dir) / f"{self.name}_index"
        key = config_hash({"model": self.ctx.model_id, "method": self.identity(), "data": data_hash}, n=12)
        return Path(self.ctx.index_root) / f"{safe_component(self.ctx.data_name)}-{self.name}-{key}"

    def serving(self) -> dict[str, Any]:
        """What a later run needs to answer queries from the index alone: the weights and the query encoding."""
        return {
            "model_path": self.ctx.model_path,
            "model_revision": self.ctx.model_revision,
            "model_dtype": self.ctx.model_dtype,
            "query_mask_prompt": self.masks_prompt("query"),  # so a later run encodes queries alike
            "max_length": self.ctx.max_length,
            "run": dict(self.ctx.run_names),
        }

    def build(self, train: Sequence[Record]) -> None:
        """Write (or resume, reuse or rebuild) the index of ``train``, then open it."""
        rows = self.encode(train, "train")
        self.row_meta = RowPreviews(train)
        ix = self.index_settings()
        plan = BatchPlan.from_batches(self.plan_batches(rows), ix.block_rows, self.plan_params())
        data_hash = rows_hash(rows)
        manifest = {
            "method": {"name": self.name, **self.identity()},
            "model": self.ctx.model_id,
            "data_hash": data_hash,
            "serving": self.serving(),
        }
        writer_args: dict[str, Any] = dict(
            dim=self.dim,
            num_rows=len(rows),
            manifest=manifest,
            tables=self.tables(),
            dtype=self.dtype,
            block_rows=ix.block_rows,
            plan=plan,
            rebuild_hint=f"set {ix.key('reuse')}=false to rebuild it, or choose a new {ix.key('dir')}",
        )
        path = self.index_dir(data_hash)
        lead = launched_rank() == 0  # launched data-parallel ranks > 0 only compute their blocks
        with cache_lock(path, f"the {self.name} index {path}", enabled=lead):
            target = path if ix.reuse else _fresh_dir(path, ix, lead)
            pending = list(range(plan.num_blocks))
            if ix.reuse or lead:
                writer = IndexWriter(target, resume=True, clean_partial=lead, **writer_args)
                if writer.plan != plan:
                    log.info(
                        "%s: following the batch plan stored with %s (%s), not the current settings' (%s)",
                        self.name,
                        target,
                        writer.plan.params if writer.plan else None,
                        plan.params,
                    )
                plan = writer_args["plan"] = writer.plan
                pending = writer.pending_blocks()
            if pending:
                work = PendingBlocks(rows, plan, pending, target, writer_args)
                n, blocks = work.num_rows, len(pending)
                log.info("%s: indexing %d of %d rows (%d blocks) in %s", self.name, n, len(rows), blocks, target)
                self.compute_blocks(work)
            elif lead:
                log.info("%s: reusing the index in %s (every row already there)", self.name, target)
            if lead:
                if not _is_complete(target):
                    IndexWriter(target, resume=True, **writer_args).finalize()
                if target != path:
                    _replace_dir(path, target)
            distributed_barrier()  # launched ranks open the index only once rank 0 has put it in place
        self.index = SignatureIndex.open(path)
        self.index_bytes = int(self.index.nbytes)

    def attach(self, path: str | os.PathLike) -> SignatureIndex:
        """Use the finished index at ``path`` without building (its method settings must be these)."""
        index = SignatureIndex.open(path)
        stored = index.manifest.get("method", {})
        mine = {"name": self.name, **self.identity()}
        diff = manifest_diff({"method": stored}, {"method": _jsonable(mine)}, ["method"])
        if diff:
            raise IndexError_(f"index {path} was built with other {self.name} settings: " + "; ".join(diff))
        if index.manifest.get("tables_sha256") != tables_sha256(self.tables()):
            raise IndexError_(f"index {path} was built with other sketch tables than these settings draw")
        self.index, self.index_bytes = index, int(index.nbytes)
        return index

    def encode_row(self, record: Record, row: int) -> EncodedRow:
        """One pool row encoded as the build encodes it (explanations of an index without stored tokens)."""
        return self.encode([record], "train")[0]

    def stored_row(self, i: int, pool: Sequence[Record] | None = None) -> EncodedRow:
        """Pool row ``i`` as its vector was computed: the index's stored tokens, else encoded from ``pool``.

        Raises:
            DataError: the index keeps no tokens and no pool is given.
        """
        index = self.require_index()
        if index.stores_tokens:
            ids, mask = index.row_tokens(i)
            return EncodedRow(row=i, input_ids=ids, target_mask=mask)
        if pool is None:
            raise DataError(
                f"{index.root} stores no row tokens ({self.index_settings().key('store_tokens')}=false): explaining "
                "its rows needs the pool it was built from (stage=explain without stage.index)"
            )
        return self.encode_row(pool[i], i)

    def require_index(self) -> SignatureIndex:
        """The built index (raises if :meth:`build` has not run)."""
        if self.index is None:
            raise RuntimeError(f"{type(self).__name__}.build must run before scoring")
        return self.index

    # ------------------------------------------------------------------ answers
    def score(self, queries: Sequence[Record]) -> np.ndarray:
        return all_scores(self.require_index(), self.query_vectors(queries))

    def searcher(self, search: Any = None) -> Searcher:
        """The :class:`~rise_exp.retrieval.ann.Searcher` ``search`` (``search.*`` settings; None: exact) names, built
        once per settings (compressed copies are cached inside the index directory)."""
        key = repr(search)
        cache = self.__dict__.setdefault("_searchers", {})
        if key not in cache:
            cache[key] = open_searcher(self.require_index(), search)
        return cache[key]

    def topk(
        self, queries: Sequence[Record], k: int, largest: bool = True, ties: str = "low", search: Any = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Streaming top-k ``(scores, rows)`` ``[Q, k]`` without a dense score matrix (exact unless ``search``
        names a compressed or approximate backend)."""
        return self.searcher(search).topk(self.query_vectors(queries), k, largest=largest, ties=ties)

    def top_bottom(
        self, queries: Sequence[Record], k_top: int, k_bottom: int, search: Any = None
    ) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
        """Each query's ``k_top`` best rows (ties: smaller row first) and ``k_bottom`` worst rows (worst first,
        ties: larger row first), streamed over the index; the query vectors are computed once."""
        searcher, q = self.searcher(search), self.query_vectors(queries)
        return searcher.topk(q, k_top), searcher.topk(q, k_bottom, largest=False, ties="high")

    def value(self, targets: Sequence[Record], mode: str = "mean") -> np.ndarray:
        """Mean score over the targets (one pass against their mean vector), or reciprocal-rank fusion."""
        return value_against_index(self.require_index(), self.query_vectors(targets), mode)


class RowPreviews(Sequence[dict[str, Any]]):
    """Each row's index metadata (id and a text preview), built from the pool on access."""

    def __init__(self, records: Sequence[Record]) -> None:
        self.records = records

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> dict[str, Any]:  # type: ignore[override]
        r = self.records[int(i)]
        return {"id": r.id, "preview": r.full_text[:PREVIEW_CHARS]}


def _is_complete(path: Path) -> bool:
    try:
        return json.loads((path / MANIFEST).read_text()).get("status") == "complete"
    except (OSError, ValueError, AttributeError):
        return False


def _check_index_dir(path: Path, ix: IndexSettings) -> None:
    """Refuse to delete a directory holding anything but index files."""
    if path.is_dir() and (foreign := foreign_entries(path)):
        raise ConfigError(
            f"{ix.key('dir')}: {path} holds files that are not part of an index ({', '.join(foreign[:3])}); "
            f"{ix.key('reuse')}=false replaces the whole directory, so choose an index directory of its own"
        )


def _fresh_dir(path: Path, ix: IndexSettings, lead: bool) -> Path:
    """The empty sibling directory a ``reuse=false`` build writes into (``<dir>.rebuild``)."""
    _check_index_dir(path, ix)
    fresh = path.with_name(path.name + ".rebuild")
    if lead and fresh.exists():
        _check_index_dir(fresh, ix)
        shutil.rmtree(fresh)
    return fresh


def _replace_dir(path: Path, new: Path) -> None:
    """Put the finished index ``new`` in place of ``path`` (the old index is deleted only afterwards)."""
    old = path.with_name(path.name + ".old")
    if old.exists():
        shutil.rmtree(old)
    if path.exists():
        os.replace(path, old)
    os.replace(new, path)
    shutil.rmtree(old, ignore_errors=True)
    log.info("replaced the index %s by a fresh build", path)
