"""A run's results page (``report.html``): settings, model, metrics with chance levels, plots, and each
query's top rows with their tokens shaded by their share of the score (from ``explain.jsonl``; rows of
``topk.jsonl`` unshaded when a run has no explanation).

It reads only files of the run directory, so it can be written again for any finished run
(:func:`write_run_page`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rise_exp.core.results import CHANCE_FILE, COST_KEYS, MAIN_KEYS, PAGE_FILE
from rise_exp.report.html import SPECIAL, data_uri, metric_chart, scale_of, tokens_html, write_page
from rise_exp.report.runs import lookup, read_run

#: Queries shown open when the page loads (the rest are collapsed sections, laid out when opened).
OPEN_QUERIES = 3
#: Characters of a query shown in its collapsed heading.
HEADING_CHARS = 90


def write_run_page(run_dir: str | Path) -> Path:
    """Write ``<run_dir>/report.html`` from the run's files; returns its path."""
    run_dir = Path(run_dir)
    return write_page(run_dir / PAGE_FILE, "run.html.j2", **run_context(run_dir))


def run_context(run_dir: Path) -> dict[str, Any]:
    """Everything the run page shows, read from ``run_dir``."""
    rec = read_run(run_dir, run_dir.name)
    config = rec.config if isinstance(rec.config, Mapping) else {}
    names = {k: lookup(config, f"{k}.name")[1] for k in ("task", "method", "model", "stage")}
    raw_metrics = _json(run_dir / "metrics.json") or {}
    chance = _json(run_dir / CHANCE_FILE) or {}
    queries, explained = _queries(run_dir)
    positive = next((q.get("positive") for q in queries if q.get("positive")), None)
    return {
        "title": f"{names['method'] or 'run'} on {names['task'] or '?'} ({names['model'] or '?'})",
        "names": names,
        "run_dir": str(run_dir),
        "status": rec.status,
        "error": rec.error,
        "metrics": _metric_rows(raw_metrics, chance),
        "chance_draws": chance.get("draws"),
        "chart": metric_chart({k: raw_metrics[k] for k in MAIN_KEYS if k in raw_metrics}, chance),
        "other_metrics": {k: v for k, v in raw_metrics.items() if k not in MAIN_KEYS and k not in COST_KEYS},
        "model": _json(run_dir / "model.json") or {},
        "config_text": _text(run_dir / "config.yaml"),
        "overrides": rec.overrides,
        "plots": [{"name": p.name, "src": data_uri(p)} for p in sorted(run_dir.glob("*.png"))],
        "queries": [_query_view(q, positive) for q in queries],
        "explained": explained,
        "note": next((q.get("note") for q in queries if q.get("note")), None),
        "available": any(q.get("available") for q in queries),
        "unit": next((q.get("unit") for q in queries if q.get("unit")), "token"),
        "open_queries": OPEN_QUERIES,
        "positive_name": (positive or "positive").replace("_", " "),
        "k": max((len(q.get("rows") or q.get("top") or []) for q in queries), default=0),
    }


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _text(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _queries(run_dir: Path) -> tuple[list[dict[str, Any]], bool]:
    """The query lines of explain.jsonl (True), else of topk.jsonl (False); [] when neither exists."""
    for name, explained in (("explain.jsonl", True), ("topk.jsonl", False)):
        path = run_dir / name
        if path.is_file():
            with open(path, encoding="utf-8") as f:
                return [json.loads(line) for line in f if line.strip()], explained
    return [], False


def _metric_rows(metrics: Mapping[str, Any], chance: Mapping[str, Any]) -> list[dict[str, Any]]:
    rows = [
        {"name": k, "value": metrics[k], "chance": chance.get(k), "chance_std": chance.get(f"{k}_std")}
        for k in MAIN_KEYS
        if k in metrics
    ]
    rows += [{"name": k, "value": metrics[k], "chance": None, "chance_std": None} for k in COST_KEYS if k in metrics]
    return rows


def label_names(label: Any, positive: str | None, domain: Any = None) -> list[tuple[str, str]]:
    """Badges ``(text, css class)`` for a row's label and domain (``positive``: what label 1 means)."""
    out = []
    if label is not None:
        what = (positive or "positive").replace("_", " ")
        out.append((what, "pos") if int(label) == 1 else (f"not {what}", "neg"))
    if domain:
        out.append((str(domain), "dom"))
    return out


def top_pieces(pieces: Sequence[tuple[str, float | None]], n: int = 3) -> list[tuple[str, float]]:
    """The ``n`` words with the largest positive shares (what a reader looks for first), largest first; a word is
    a run of scored pieces without a space between them (``how`` + ``dy`` + ``!``), its share their sum."""
    words: list[tuple[str, float]] = []
    text, share, open_word = "", 0.0, False
    for piece, s in [*pieces, (" ", None)]:
        joins = open_word and s is not None and piece[:1].strip() != "" and not SPECIAL.fullmatch(piece)
        if joins:
            text, share = text + piece, share + s
            continue
        if open_word and text.strip():
            words.append((text.strip(), share))
        open_word = s is not None and piece.strip() != "" and not SPECIAL.fullmatch(piece)
        text, share = (piece, s) if open_word else ("", 0.0)
    return sorted((w for w in words if w[1] > 0), key=lambda w: -w[1])[:n]


def _pieces(tokens: Sequence[Sequence[Any]] | None) -> list[tuple[str, float | None]]:
    return [(str(p), None if s is None else float(s)) for p, s in (tokens or [])]


def _query_view(q: Mapping[str, Any], positive: str | None) -> dict[str, Any]:
    """One query's section: its tokens shaded by their shares summed over its rows, and each row shaded."""
    rows = q.get("rows") or q.get("top") or []
    per_row = [_pieces(r.get("query_tokens")) for r in rows]
    summed: list[tuple[str, float | None]] = []
    if per_row and all(len(p) == len(per_row[0]) for p in per_row):
        for i, (text, _) in enumerate(per_row[0]):
            shares = [p[i][1] for p in per_row if p[i][1] is not None]
            summed.append((text, sum(shares) if shares else None))
    row_scale = max((scale_of([s for _, s in _pieces(r.get("tokens"))]) for r in rows), default=0.0)
    query_scale = max((scale_of([s for _, s in p]) for p in per_row), default=0.0)
    views = []
    for r, qp in zip(rows, per_row):
        pieces = _pieces(r.get("tokens"))
        views.append(
            {
                "rank": r.get("rank"),
                "id": r.get("id"),
                "score": r.get("score"),
                "explained": r.get("explained"),
                "badges": label_names(r.get("label"), positive, r.get("domain")),
                "html": tokens_html(pieces, row_scale) if pieces else None,
                "top": top_pieces(pieces),
                "text": r.get("text") or r.get("preview") or "",
                "query_html": tokens_html(qp, query_scale) if qp else None,
            }
        )
    positives = sum(1 for r in rows if r.get("label") == 1)
    text = str(q.get("query", ""))
    return {
        "id": q.get("query_id"),
        "heading": text if len(text) <= HEADING_CHARS else text[: HEADING_CHARS - 1] + "…",
        "html": tokens_html(summed, scale_of([s for _, s in summed])) if summed else None,
        "text": text,
        "badges": label_names(q.get("label"), positive, q.get("domain")),
        "rows": views,
        "positives": positives if any(r.get("label") is not None for r in rows) else None,
        "available": q.get("available", False),
    }
