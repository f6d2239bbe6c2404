"""A training pool read from memory-mapped Arrow (Hugging Face ``datasets``), never held as Python records.

:class:`ArrowPool` is a ``Sequence[Record]``: ``pool[i]`` builds one :class:`Record` from the Arrow row
on demand, iteration reads record batches. Opening a pool validates every row once, in batches (the same
checks and messages as the list loaders, a bad row is named by file and row), and keeps only O(1)-per-row
arrays: the positions of kept rows, their 0/1 labels and an 8-byte hash of each id (duplicate check).
The pool's content hash is computed in that pass and equals :func:`records_json_hash` of the same rows
held as a list, so a streamed pool shares finetunes and indexes with a loaded one.

Sources: ``.jsonl`` / ``.json`` / ``.parquet`` files, a ``save_to_disk`` directory, or ``hf:<dataset id>``.
"""

from __future__ import annotations

import hashlib
import json
import logging
from array import array
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, overload

import numpy as np

from rise_exp.core.errors import ConfigError, DataError
from rise_exp.data.loaders import DEFAULT_ID_PREFIX, EmptyFieldError, check_fields, load_records, row_to_record
from rise_exp.data.records import Record

_BATCH = 1024
_log = logging.getLogger(__name__)
_BUILDERS = {".jsonl": "json", ".json": "json", ".parquet": "parquet"}


def records_json_hash(records: Iterable[Record], n: int = 16) -> str:
    """sha256 of ``json.dumps([r.to_dict() for r in records], sort_keys=True, ensure_ascii=False, default=str)``,
    computed row by row (the list is never built); the first ``n`` hex digits."""
    h = hashlib.sha256()
    update_records_json(h, records)
    return h.hexdigest()[:n]


def update_records_json(h: Any, records: Iterable[Record]) -> None:
    """Feed ``h`` the bytes ``json.dumps`` writes for the list of ``records``' dicts, one row at a time."""
    h.update(b"[")
    for i, r in enumerate(records):
        if i:
            h.update(b", ")
        h.update(json.dumps(r.to_dict(), sort_keys=True, ensure_ascii=False, default=str).encode("utf-8"))
    h.update(b"]")


def _id_hash(rid: str) -> int:
    return int.from_bytes(hashlib.blake2b(rid.encode("utf-8"), digest_size=8).digest(), "little", signed=True)


def _open_dataset(spec: str, split: str, name: str | None, revision: str | None, cache_dir: str | None) -> Any:
    """The Arrow dataset behind ``spec`` (memory-mapped; ``datasets`` writes its cache once per file)."""
    import datasets

    if spec.startswith("hf:"):
        dataset_id, builder, files = spec[3:], spec[3:], None
    else:
        path = Path(spec)
        if path.is_dir():
            ds = datasets.load_from_disk(str(path))
            return ds[split] if isinstance(ds, datasets.DatasetDict) else ds
        if not path.is_file():
            raise DataError(f"{path}: file not found")
        builder = _BUILDERS.get(path.suffix)
        if builder is None:
            raise ConfigError(f"data path {spec!r}: a streamed pool reads .jsonl, .json or .parquet files")
        dataset_id, files, split = spec, str(path), "train"
    try:
        return datasets.load_dataset(
            builder, name, split=split, revision=revision, data_files=files, cache_dir=cache_dir
        )
    except Exception as e:  # noqa: BLE001 - datasets raises many types; name the source and the first bad line
        if files is not None and builder == "json":
            _raise_first_bad_json_line(Path(files))
        raise DataError(f"cannot load {dataset_id!r} as a streamed pool: {type(e).__name__}: {e}") from None


def _raise_first_bad_json_line(path: Path) -> None:
    """Scan a JSON Lines file line by line and raise a DataError naming its first malformed line."""
    if path.suffix != ".jsonl":
        return
    with path.open(encoding="utf-8-sig") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}:{lineno}: malformed JSON ({e.msg} at column {e.colno})") from None
            if not isinstance(row, dict):
                raise DataError(f"{path}:{lineno}: expected a JSON object, got {type(row).__name__}")


class ArrowPool(Sequence[Record]):
    """Records of a memory-mapped Arrow dataset, built one at a time (see the module docstring).

    Args:
        dataset: A ``datasets.Dataset``.
        source: Name of the source in messages (a path or ``hf:`` id).
        fields: Record field -> column name.
        id_prefix: Prefix of generated ids (rows numbered from 1).
        skip_empty: Drop rows with an empty text / output instead of raising.
        positions: Dataset rows that form the pool (default: every valid row, found by validation).
    """

    def __init__(
        self,
        dataset: Any,
        source: str,
        fields: Mapping[str, str] | None = None,
        id_prefix: str = DEFAULT_ID_PREFIX,
        skip_empty: bool = False,
        positions: np.ndarray | None = None,
    ) -> None:
        self.dataset, self.source, self.id_prefix = dataset, source, id_prefix
        self.fields = check_fields(fields)
        self._positions = positions
        self._labels: np.ndarray | None = None
        self._hash = ""
        self._scan(positions, skip_empty)

    @classmethod
    def load(
        cls,
        spec: str | Path,
        *,
        fields: Mapping[str, str] | None = None,
        id_prefix: str = DEFAULT_ID_PREFIX,
        skip_empty: bool = False,
        split: str = "train",
        name: str | None = None,
        revision: str | None = None,
        cache_dir: str | None = None,
    ) -> ArrowPool:
        """Open ``spec`` (a file, a ``save_to_disk`` directory or ``hf:<id>``) as a validated pool."""
        ds = _open_dataset(str(spec), split, name, revision, cache_dir)
        return cls(ds, str(spec), fields, id_prefix, skip_empty)

    # ------------------------------------------------------------------ validation (one streamed pass)
    def _rows(self, positions: np.ndarray | None) -> Iterator[tuple[int, dict[str, Any]]]:
        """``(dataset position, row)`` in pool order, read in Arrow batches."""
        n = len(self.dataset)
        order = np.arange(n) if positions is None else positions
        for start in range(0, len(order), _BATCH):
            idx = order[start : start + _BATCH]
            contiguous = len(idx) > 0 and bool(np.all(np.diff(idx) == 1))  # a slice reads faster than a take
            batch = self.dataset[int(idx[0]) : int(idx[-1]) + 1] if contiguous else self.dataset[idx.tolist()]
            cols = list(batch)
            for j, pos in enumerate(idx):
                yield int(pos), {c: batch[c][j] for c in cols if batch[c][j] is not None}

    def _record(self, pos: int, row: Mapping[str, Any]) -> Record:
        return row_to_record(row, f"{self.source} row {pos + 1}", self.fields, f"{self.id_prefix}{pos + 1}")

    def _scan(self, positions: np.ndarray | None, skip_empty: bool = False) -> None:
        """One pass over the rows (all of the dataset's when ``positions`` is None): validate each row
        (empty ones raise or, with ``skip_empty``, are left out), and keep the positions, labels, id
        hashes for the duplicate check and the content hash of the kept rows (O(1) bytes a row)."""
        h = hashlib.sha256()
        kept, ids, labels = array("q"), array("q"), array("b")
        skipped: list[str] = []

        def records() -> Iterator[Record]:
            for pos, row in self._rows(positions):
                try:
                    rec = self._record(pos, row)
                except EmptyFieldError:
                    if not skip_empty:
                        raise
                    skipped.append(f"{self.source} row {pos + 1}")
                    continue
                kept.append(pos)
                labels.append(-1 if rec.label is None else rec.label)
                ids.append(_id_hash(rec.id))
                yield rec

        update_records_json(h, records())
        if skipped:
            _log.warning(
                "%s: skipped %d row(s) with an empty text or output (first: %s)", self.source, len(skipped), skipped[0]
            )
        if positions is None:  # the whole dataset, or the rows that passed validation
            if not kept:
                raise DataError(f"{self.source}: no records (empty file or dataset)")
            self._positions = None if len(kept) == len(self.dataset) else np.frombuffer(kept, dtype=np.int64)
        self._hash = h.hexdigest()
        id_hashes = np.frombuffer(ids, dtype=np.int64)
        uniq, counts = np.unique(id_hashes, return_counts=True)
        if (counts > 1).any():
            dup = self[int(np.flatnonzero(id_hashes == uniq[counts > 1][0])[1])]
            raise DataError(f"{self.source}: duplicate id {dup.id!r} (row ids must be unique)")
        self._labels = np.frombuffer(labels, dtype=np.int8).copy()

    # ------------------------------------------------------------------ the sequence
    def __len__(self) -> int:
        return len(self.dataset) if self._positions is None else len(self._positions)

    def _position(self, i: int) -> int:
        n = len(self)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"row {i} out of range for a pool of {n} rows")
        return i if self._positions is None else int(self._positions[i])

    @overload
    def __getitem__(self, i: int) -> Record: ...
    @overload
    def __getitem__(self, i: slice) -> list[Record]: ...
    def __getitem__(self, i: int | slice) -> Record | list[Record]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        pos = self._position(int(i))
        row = {k: v for k, v in self.dataset[pos].items() if v is not None}
        return self._record(pos, row)

    def __iter__(self) -> Iterator[Record]:
        for pos, row in self._rows(self._positions):
            yield self._record(pos, row)

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled (for spawned data-parallel workers) by reference to the Arrow files, without revalidating."""
        state = (self.dataset, self.source, self.fields, self.id_prefix, self._positions, self._labels, self._hash)
        return (_restore, state)

    # ------------------------------------------------------------------ what a task needs
    def subset(self, rows: Sequence[int]) -> ArrowPool:
        """The pool of ``rows`` (positions in this pool, kept in the given order)."""
        base = np.arange(len(self.dataset)) if self._positions is None else self._positions
        return ArrowPool(
            self.dataset, self.source, self.fields, self.id_prefix, positions=base[np.asarray(rows, dtype=np.int64)]
        )

    def labels(self) -> np.ndarray | None:
        """0/1 labels ``[n]`` when every row has one, None when none has.

        Raises:
            DataError: some rows labelled and others not.
        """
        assert self._labels is not None
        missing = self._labels < 0
        if missing.all():
            return None
        if missing.any():
            first = self[int(np.flatnonzero(missing)[0])].id
            raise DataError(
                f"{self.source}: {int(missing.sum())} pool rows have no label (first: {first!r}) while others do; "
                "label every row (0/1) or none"
            )
        return self._labels.astype(np.int64)

    def json_hash(self, n: int = 16) -> str:
        """:func:`records_json_hash` of the pool (computed when it was opened)."""
        return self._hash[:n]


def _restore(dataset, source, fields, id_prefix, positions, labels, digest) -> ArrowPool:
    pool = ArrowPool.__new__(ArrowPool)
    pool.dataset, pool.source, pool.fields, pool.id_prefix = dataset, source, fields, id_prefix
    pool._positions, pool._labels, pool._hash = positions, labels, digest
    return pool


#: A local pool file at least this large is streamed when ``stream`` is left unset (null).
STREAM_AUTO_BYTES = 512 * 2**20


def use_stream(path: str | Path, stream: bool | None) -> bool:
    """Whether the pool file at ``path`` is read as memory-mapped Arrow: as ``stream`` says, or, when it is
    None, if the file has at least :data:`STREAM_AUTO_BYTES` bytes (a list of records would hold it all)."""
    if stream is not None:
        return stream
    size = Path(path).stat().st_size if Path(path).is_file() else 0
    if size >= STREAM_AUTO_BYTES:
        _log.info("streaming %s (%d MB): pool files of %d MB or more are read as memory-mapped Arrow", path,
                  size >> 20, STREAM_AUTO_BYTES >> 20)  # fmt: skip
    return size >= STREAM_AUTO_BYTES


def open_pool(
    spec: str | Path,
    *,
    fields: Mapping[str, str] | None = None,
    stream: bool | None = None,
    skip_empty: bool = False,
    list_id_prefix: str | None = None,
    **hub: Any,
) -> Sequence[Record]:
    """A pool as records: an :class:`ArrowPool` when streamed (:func:`use_stream`; a hub pool only when asked),
    else a list. The one place where a pool is streamed or loaded.

    Args:
        spec: A file (or ``save_to_disk`` directory when streamed), or ``hf:<dataset id>``.
        fields: Record field -> column name.
        stream: True / False, or None: by the file's size.
        skip_empty: Drop rows with an empty text / output instead of raising.
        list_id_prefix: Prefix of the generated ids of a loaded list (default ``row-``, a streamed pool's).
        hub: ``split``, ``name`` and ``revision`` of an ``hf:`` spec.
    """
    if use_stream(spec, stream):
        return ArrowPool.load(spec, fields=fields, skip_empty=skip_empty, **hub)
    return load_records(spec, fields=dict(fields or {}), skip_empty=skip_empty, id_prefix=list_id_prefix, **hub)
