"""Load records from JSONL / JSON files and Hugging Face datasets, with one clear error per bad row.

Every loader accepts ``fields``, a mapping from :class:`Record` field names to the source's keys
(e.g. ``{"text": "tweet", "output": "response"}``); unmapped fields are read from keys of the same
name, and every other source key is kept in ``Record.meta``. A row must have a non-empty ``text``,
or an ``instruction`` and a non-empty ``output``. Rows without an ``id`` get ``{id_prefix}{line}``.
"""

from __future__ import annotations

import json
import logging
import numbers
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from rise_exp.core.errors import ConfigError, DataError
from rise_exp.data.records import Record

RECORD_FIELDS: tuple[str, ...] = ("id", "text", "instruction", "input", "output", "label", "domain")
_STRING_FIELDS: tuple[str, ...] = ("text", "instruction", "input", "output", "domain")
_SKIP_HINT = " (pass skip_empty=True, or set task.skip_empty=true, to drop such rows)"
DEFAULT_ID_PREFIX = "row-"
_log = logging.getLogger(__name__)


class EmptyFieldError(DataError):
    """A row whose text or output is empty; loaders drop such rows when ``skip_empty`` is set."""


def check_fields(fields: Mapping[str, str] | None) -> dict[str, str]:
    """The ``fields`` mapping (Record field -> source key), checked: known fields, non-empty keys."""
    mapping = dict(fields or {})
    unknown = sorted(set(mapping) - set(RECORD_FIELDS))
    if unknown:
        raise ConfigError(f"unknown record field(s) {unknown} in fields mapping; allowed: {', '.join(RECORD_FIELDS)}")
    for k, v in mapping.items():
        if not isinstance(v, str) or not v:
            raise ConfigError(f"fields.{k} must name a source key (a non-empty string); got {v!r}")
    return mapping


def _label(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, numbers.Real) and value in (0, 1):
        return int(value)
    if isinstance(value, str) and value.strip() in ("0", "1"):
        return int(value.strip())
    raise DataError(f"{where}: label must be 0 or 1; got {value!r}")


def row_to_record(row: Any, where: str, fields: Mapping[str, str], default_id: str) -> Record:
    """Validate one source row and turn it into a :class:`Record`.

    Args:
        row: The parsed source row (must be a mapping).
        where: Location for error messages, e.g. ``"train.jsonl:12"``.
        fields: Record field -> source key (already validated).
        default_id: The id to use when the row has none.

    Raises:
        DataError: naming ``where`` for a non-object row, a missing or empty required field, a
            non-string text field or a non-binary label.
    """
    if not isinstance(row, Mapping):
        raise DataError(f"{where}: expected a JSON object, got {type(row).__name__}")
    keys = {f: fields.get(f, f) for f in RECORD_FIELDS}
    values: dict[str, Any] = {}
    for f, key in keys.items():
        v = row.get(key)
        if f in _STRING_FIELDS and v is not None and not isinstance(v, str):
            raise DataError(f"{where}: field {key!r} must be a string; got {type(v).__name__}")
        values[f] = v
    used = set(keys.values())
    meta = {k: v for k, v in row.items() if k not in used}

    if values["instruction"] is not None:
        if values["output"] is None:
            raise DataError(f"{where}: instruction row is missing its output field {keys['output']!r}")
        if not values["output"].strip():
            raise EmptyFieldError(f"{where}: empty output in field {keys['output']!r}{_SKIP_HINT}")
        if values["text"]:  # e.g. finance-alpaca's pre-rendered 'text' column: keep, do not train on
            meta[keys["text"]] = values["text"]
        values["text"] = None
        if values["input"] is not None and not values["input"].strip():
            values["input"] = None
    elif values["text"] is not None:
        if not values["text"].strip():
            raise EmptyFieldError(f"{where}: empty text in field {keys['text']!r}{_SKIP_HINT}")
        for f in ("input", "output"):  # plain-text row: keep stray instruction fields as meta
            if values[f] is not None:
                meta[keys[f]] = values.pop(f)
                values[f] = None
    else:
        raise DataError(
            f"{where}: missing required field: a row needs {keys['text']!r}, or "
            f"{keys['instruction']!r} and {keys['output']!r}; found keys {sorted(row)}"
        )

    rid = values["id"]
    if rid is None or (isinstance(rid, str) and not rid.strip()):
        rid = default_id
    return Record(
        id=str(rid),
        text=values["text"],
        instruction=values["instruction"],
        input=values["input"],
        output=values["output"],
        label=_label(values["label"], where),
        domain=values["domain"],
        meta=meta,
    )


def records_from_rows(
    rows: Iterable[tuple[str, int, Any]],
    source: str,
    fields: Mapping[str, str] | None = None,
    id_prefix: str = DEFAULT_ID_PREFIX,
    skip_empty: bool = False,
) -> list[Record]:
    """Build records from ``(where, number, row)`` triples, rejecting duplicate ids and empty input.

    ``number`` (1-based line or row) is used for generated ids. With ``skip_empty``, rows whose text
    or output is empty are dropped (and counted in a warning) instead of raising.
    """
    mapping = check_fields(fields)
    out: list[Record] = []
    seen: dict[str, str] = {}
    skipped: list[str] = []
    for where, number, row in rows:
        try:
            rec = row_to_record(row, where, mapping, f"{id_prefix}{number}")
        except EmptyFieldError:
            if not skip_empty:
                raise
            skipped.append(where)
            continue
        if rec.id in seen:
            raise DataError(f"{where}: duplicate id {rec.id!r} (first seen at {seen[rec.id]})")
        seen[rec.id] = where
        out.append(rec)
    if skipped:
        _log.warning("%s: skipped %d row(s) with an empty text or output (first: %s)", source, len(skipped), skipped[0])
    if not out:
        raise DataError(f"{source}: no records (empty file or dataset)")
    return out


def _read_text(path: str | Path) -> tuple[Path, str]:
    p = Path(path)
    if p.is_dir():
        raise DataError(f"{p}: is a directory, not a JSONL / JSON file")
    if not p.is_file():
        raise DataError(f"{p}: file not found")
    try:
        return p, p.read_text(encoding="utf-8-sig")  # tolerates a byte-order mark
    except UnicodeDecodeError as e:
        raise DataError(f"{p}: not UTF-8 text ({e.reason} at byte {e.start})") from None


def _jsonl_rows(p: Path, text: str) -> Iterable[tuple[str, int, Any]]:
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{p}:{lineno}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{where}: malformed JSON ({e.msg} at column {e.colno})") from None
        yield where, lineno, row


def load_jsonl(
    path: str | Path,
    fields: Mapping[str, str] | None = None,
    id_prefix: str = DEFAULT_ID_PREFIX,
    skip_empty: bool = False,
) -> list[Record]:
    """Load a JSON Lines file, one object per line (blank lines are skipped).

    Raises:
        DataError: naming ``path:line`` for the first bad line.
    """
    p, text = _read_text(path)
    return records_from_rows(_jsonl_rows(p, text), str(p), fields, id_prefix, skip_empty)


def _json_array_rows(p: Path, text: str) -> Iterable[tuple[str, int, Any]]:
    """Yield the elements of a top-level JSON array with the 1-based line each starts on."""
    decoder = json.JSONDecoder()

    def line_of(pos: int) -> int:
        return text.count("\n", 0, pos) + 1

    def skip_ws(pos: int) -> int:
        while pos < len(text) and text[pos] in " \t\r\n":
            pos += 1
        return pos

    pos = skip_ws(0)
    if pos >= len(text):
        return
    if text[pos] != "[":
        raise DataError(f"{p}:{line_of(pos)}: expected a JSON array of objects")
    pos = skip_ws(pos + 1)
    if pos < len(text) and text[pos] == "]":
        return
    while True:
        line = line_of(pos)
        try:
            row, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as e:
            raise DataError(f"{p}:{e.lineno}: malformed JSON ({e.msg} at column {e.colno})") from None
        yield f"{p}:{line}", line, row
        pos = skip_ws(pos)
        if pos < len(text) and text[pos] == ",":
            pos = skip_ws(pos + 1)
            continue
        if pos < len(text) and text[pos] == "]":
            if skip_ws(pos + 1) < len(text):
                raise DataError(f"{p}:{line_of(skip_ws(pos + 1))}: extra data after the JSON array")
            return
        raise DataError(f"{p}:{line_of(pos)}: malformed JSON (expected ',' or ']' in the array)")


def load_json(
    path: str | Path,
    fields: Mapping[str, str] | None = None,
    id_prefix: str = DEFAULT_ID_PREFIX,
    skip_empty: bool = False,
) -> list[Record]:
    """Load a JSON file holding an array of objects; errors name the line an element starts on."""
    p, text = _read_text(path)
    return records_from_rows(_json_array_rows(p, text), str(p), fields, id_prefix, skip_empty)


def load_hf(
    dataset_id: str,
    split: str = "train",
    *,
    name: str | None = None,
    revision: str | None = None,
    fields: Mapping[str, str] | None = None,
    limit: int | None = None,
    data_files: str | list[str] | None = None,
    id_prefix: str = DEFAULT_ID_PREFIX,
    skip_empty: bool = False,
) -> list[Record]:
    """Load a Hugging Face dataset split through ``datasets.load_dataset``.

    A local directory written by ``Dataset.save_to_disk`` is read with ``datasets.load_from_disk``.

    Args:
        dataset_id: Hub id (``"gbharti/finance-alpaca"``), a builder name with ``data_files``
            (``"json"``), or a ``save_to_disk`` directory.
        split: Split to read.
        name: Dataset configuration name.
        revision: Hub revision (commit, tag or branch) to pin.
        fields: Record field -> column name.
        limit: Read only the first ``limit`` rows.
        data_files: Passed to ``load_dataset`` for builder names such as ``"json"``.
        id_prefix: Prefix of generated ids; rows are numbered from 1.
        skip_empty: Drop rows with an empty text / output instead of raising.

    Raises:
        DataError: if the dataset cannot be loaded, or a row is bad (``"{id}[{split}] row {n}"``).
    """
    import datasets

    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ConfigError(f"limit must be a positive integer or null; got {limit!r}")
    local = Path(dataset_id)
    try:
        markers = ("dataset_info.json", "state.json", "dataset_dict.json")
        if local.is_dir() and any((local / m).exists() for m in markers):
            ds = datasets.load_from_disk(str(local))
            if isinstance(ds, datasets.DatasetDict):
                ds = ds[split]
        else:
            ds = datasets.load_dataset(dataset_id, name, split=split, revision=revision, data_files=data_files)
    except (FileNotFoundError, ValueError, KeyError, ConnectionError, OSError) as e:
        raise DataError(f"cannot load dataset {dataset_id!r} (name={name!r}, split={split!r}): {e}") from None
    if limit is not None:
        ds = ds.select(range(min(limit, len(ds))))
    source = f"{dataset_id}[{split}]"
    rows = ((f"{source} row {i}", i, row) for i, row in enumerate(ds, start=1))
    return records_from_rows(rows, source, fields, id_prefix, skip_empty)


def load_records(spec: str | Path | Mapping[str, Any], **kwargs: Any) -> list[Record]:
    """Load records from a spec: a ``.jsonl`` / ``.json`` path, ``"hf:<dataset id>"``, or a mapping.

    A mapping has ``path`` (a path or ``hf:`` id) plus keyword arguments of the loader (``fields``,
    ``split``, ``name``, ``revision``, ``limit``, ``id_prefix``, ``skip_empty``). ``kwargs`` add to / override them.

    Raises:
        ConfigError: for a spec that is neither.
    """
    if isinstance(spec, Mapping):
        opts = {k: v for k, v in spec.items() if k != "path"}
        opts.update(kwargs)
        if "path" not in spec:
            raise ConfigError(f"data spec {dict(spec)!r} has no 'path'")
        return load_records(spec["path"], **opts)
    s = str(spec)
    opts = {k: v for k, v in kwargs.items() if v is not None}
    if s.startswith("hf:"):
        allowed_hf = {"split", "name", "revision", "fields", "limit", "data_files", "id_prefix", "skip_empty"}
        _reject_options(s, opts, allowed_hf)
        return load_hf(s[3:], **opts)
    _reject_options(s, opts, {"fields", "id_prefix", "skip_empty"})
    if s.endswith(".jsonl"):
        return load_jsonl(s, **opts)
    if s.endswith(".json"):
        return load_json(s, **opts)
    if Path(s).is_dir():
        raise DataError(f"{s}: is a directory, not a JSONL / JSON file")
    raise ConfigError(f"data path {s!r}: unsupported; use a .jsonl or .json file, or 'hf:<dataset id>'")


def _reject_options(spec: str, opts: Mapping[str, Any], allowed_opts: set[str]) -> None:
    extra = sorted(set(opts) - allowed_opts)
    if extra:
        raise ConfigError(
            f"data spec {spec!r}: unsupported option(s) {extra}; allowed: {', '.join(sorted(allowed_opts))}"
        )
