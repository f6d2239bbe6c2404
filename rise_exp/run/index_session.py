"""The daily loop in Python: open an index once, then ask it as many query lists as you like.

    from rise_exp.run.index_session import IndexSession

    with IndexSession.open(".cache/indexes/pool-rise-3f2a...") as index:
        for hit in index.query(["How often should tomatoes be watered?"], k=5)[0]:
            print(hit["rank"], hit["id"], round(hit["score"], 3), hit["text"])
        best = index.valuate(["a target text", "another"])[:10]      # the pool ranked by value
        kept = index.select(["a target text"], fraction=0.3)         # the top 30% of the pool

The model the manifest names is loaded once (:func:`rise_exp.run.serving.open_index_method`), so each later
call costs only the query forward passes and the search. Rows come back in the schema of ``topk.jsonl``
(:mod:`rise_exp.run.rankings`): ``rank, row, id, score, label, text`` (``value`` for valuation).
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rise_exp.config.run_settings import SearchConfig
from rise_exp.config.trainer import TrainerConfig
from rise_exp.core.errors import ConfigError
from rise_exp.data.records import Record
from rise_exp.retrieval.valuation import chosen_rows
from rise_exp.run.rankings import ranked_rows
from rise_exp.run.runner import BuiltMethod, valuation_values
from rise_exp.run.serving import open_index_method, rows_meta, top_rows

#: What a query may be: a plain text, a Record, or a mapping of Record fields (``{"id", "text"}``, ...).
QueryLike = str | Record | Mapping[str, Any]
MODES = ("mean", "rrf")


def as_records(queries: Sequence[QueryLike] | str) -> list[Record]:
    """Texts, records or field mappings as records (ids ``query-<i>`` where none is given)."""
    if isinstance(queries, str):
        queries = [queries]
    out = []
    for i, q in enumerate(queries):
        if isinstance(q, Record):
            out.append(q)
        elif isinstance(q, str):
            out.append(Record(id=f"query-{i}", text=q))
        elif isinstance(q, Mapping):
            fields = {k: v for k, v in q.items() if k in Record.__dataclass_fields__}
            fields.setdefault("id", f"query-{i}")
            if not any(fields.get(k) for k in ("text", "instruction", "input", "output")):
                raise ConfigError(f"query {i} has no text (give text, or instruction / input / output)")
            out.append(Record(**fields))
        else:
            raise ConfigError(f"query {i} must be a text or a mapping of record fields, got {type(q).__name__}")
    if not out:
        raise ConfigError("no queries given")
    return out


class IndexSession:
    """A finished index with its method and model loaded, answering queries, valuations and selections.

    Calls are serialised by a lock, so one session may serve several threads (the HTTP server does).
    """

    def __init__(self, method: Any, path: Path, search: SearchConfig, work_dir: tempfile.TemporaryDirectory) -> None:
        self.method, self.path, self.search = method, path, search
        self._work_dir = work_dir
        self._lock = threading.Lock()
        index = getattr(method, "index", None)
        self.num_rows = len(index) if index is not None else int(method.num_rows)

    @classmethod
    def open(cls, path: str | Path, *, threads: int | None = None, search: SearchConfig | None = None) -> IndexSession:
        """Open the index at ``path`` and load the model its manifest names (once).

        Args:
            path: A finished index directory (RISE, RapidIn or BM25).
            threads: CPU threads for the model (None: torch's default).
            search: How to answer (exact by default; ``SearchConfig(backend="simhash")``, ...).
        """
        work = tempfile.TemporaryDirectory(prefix="rise-exp-session-")
        trainer = TrainerConfig(threads=threads) if threads is not None else TrainerConfig()
        if threads is not None:
            import torch

            torch.set_num_threads(threads)
        method = open_index_method(path, Path(work.name), trainer)
        return cls(method, Path(path), search or SearchConfig(), work)

    @property
    def name(self) -> str:
        """The method that built the index."""
        return self.method.name

    def query(self, queries: Sequence[QueryLike] | str, k: int = 10) -> list[list[dict[str, Any]]]:
        """Each query's ``k`` best rows, best first (``rank, row, id, score, label, text``)."""
        if k < 1:
            raise ConfigError(f"k must be >= 1, got {k}")
        records = as_records(queries)
        with self._lock:
            scores, rows = top_rows(self.method, records, min(k, self.num_rows), self.search)
            out = []
            for qi in range(len(records)):
                ids = [int(r) for r in rows[qi]]
                out.append(ranked_rows(ids, scores[qi].tolist(), rows_meta(self.method, ids)))
        return out

    def values(self, targets: Sequence[QueryLike] | str, mode: str = "mean") -> np.ndarray:
        """``[rows]`` value of every row against ``targets`` (``mean`` score or ``rrf``)."""
        if mode not in MODES:
            raise ConfigError(f"unknown valuation mode {mode!r}; allowed values: {', '.join(MODES)}")
        records = as_records(targets)
        with self._lock:
            values, _ = valuation_values(BuiltMethod(self.method, self.num_rows, 0.0), records, mode)
        return values

    def valuate(self, targets: Sequence[QueryLike] | str, mode: str = "mean", k: int | None = None) -> list[dict]:
        """The pool ranked by value against ``targets``, best first (the first ``k`` rows; None: all)."""
        values = self.values(targets, mode)
        order = np.argsort(-values, kind="stable")[: k or None].tolist()
        return self._ranked(order, values)

    def select(
        self,
        targets: Sequence[QueryLike] | str,
        *,
        fraction: float | None = None,
        count: int | None = None,
        keep: str = "top",
        mode: str = "mean",
    ) -> list[dict]:
        """The rows to keep (``stage=select``'s rule): the ``count`` or ``fraction`` best (or worst) by value."""
        if (fraction is None) == (count is None):
            raise ConfigError("select: give exactly one of fraction and count")
        if keep not in ("top", "bottom"):
            raise ConfigError(f"unknown keep {keep!r}; allowed values: top, bottom")
        if fraction is not None and not 0 < fraction <= 1:
            raise ConfigError(f"fraction must be in (0, 1], got {fraction}")
        if count is not None and count < 1:
            raise ConfigError(f"count must be >= 1, got {count}")
        values = self.values(targets, mode)
        return self._ranked(chosen_rows(values, keep, fraction, count).tolist(), values)

    def _ranked(self, order: list[int], values: np.ndarray) -> list[dict]:
        entries = ranked_rows(order, values[order].tolist(), rows_meta(self.method, order))
        for e in entries:
            e["value"] = e.pop("score")
        return entries

    def close(self) -> None:
        """Release the method and its working directory."""
        self.method = None
        self._work_dir.cleanup()

    def __enter__(self) -> IndexSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
