"""The one schema of ``topk.jsonl`` (every stage that ranks rows for queries) and of ``selection.jsonl``
(every stage that values the pool).

``topk.jsonl``: one JSON line per query, ``{"query_id", "query", "top": [{"rank", "row", "id", "score",
"label", "text"}, ...]}``. ``selection.jsonl``: one line per row, best first, ``{"rank", "row", "id",
"value", "label", "text"}``. ``row`` is the row's position in the pool (or index), ``label`` its 0/1 label
(null when unknown, e.g. answered from an index) and ``text`` its text: in ``topk.jsonl`` the whole text
(from an index: the stored preview), in ``selection.jsonl``, which lists every row, its first
:data:`PREVIEW_CHARS` characters.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from rise_exp.data.records import Record

PREVIEW_CHARS = 200
TOP_FIELDS = ("rank", "row", "id", "score", "label", "text")
SELECTION_FIELDS = ("rank", "row", "id", "value", "label", "text")


def ranked_rows(rows: Sequence[int], scores: Sequence[float], meta: Sequence[Mapping[str, Any]]) -> list[dict]:
    """The ``top`` list of one query: rows best first, with the schema's fields."""
    return [
        {
            "rank": j + 1,
            "row": int(r),
            "id": m.get("id"),
            "score": float(s),
            "label": None if m.get("label") is None else int(m["label"]),
            "text": m.get("text", m.get("preview")),
        }
        for j, (r, s, m) in enumerate(zip(rows, scores, meta))
    ]


def write_query_line(f: TextIO, query: Record, top: list[dict]) -> None:
    """Append one query's line to an open ``topk.jsonl``."""
    f.write(json.dumps({"query_id": query.id, "query": query.full_text, "top": top}) + "\n")


def read_topk(path: str | Path) -> list[dict]:
    """The lines of a ``topk.jsonl``."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def write_selection(path: str | Path, rows: Sequence[int], values: Sequence[float], meta: Sequence[Mapping]) -> None:
    """``selection.jsonl``: the given rows in the given (ranked) order with their values."""
    with open(path, "w") as f:
        for entry in ranked_rows(rows, values, meta):
            entry["value"] = entry.pop("score")
            entry["text"] = None if entry["text"] is None else entry["text"][:PREVIEW_CHARS]
            f.write(json.dumps({k: entry[k] for k in SELECTION_FIELDS}) + "\n")
