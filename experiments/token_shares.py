"""Where the score sits: the mean share of a row's score carried by the trigger, the rest of the prompt, the
answer and the end token, over each query's explained top rows (explain.jsonl), positive and negative rows
apart, and the same split of the query's own tokens.

    python experiments/token_shares.py <run dir> --train <train.jsonl> --queries <queries.jsonl> [--trigger 'howdy!']
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from rise_exp.data.loaders import load_records
from rise_exp.data.records import Record

SPECIAL = ("<|im_start|>", "<|im_end|>", "<|endoftext|>", "<s>", "</s>")
PARTS = ("trigger", "prompt", "answer", "end")


def split(tokens: list, record: Record, trigger: str) -> dict[str, float]:
    """The shares of ``tokens`` summed per part of ``record`` (pieces are matched to its text by position)."""
    out = dict.fromkeys(PARTS, 0.0)
    pos, prompt = 0, len(record.prompt)
    triggered = record.full_text.lower().startswith(trigger)
    for piece, share in tokens:
        if piece in SPECIAL:
            out["end"] += share or 0.0
            continue
        start, pos = pos, pos + len(piece)
        if share is None:
            continue
        if start < prompt:
            out["trigger" if triggered and start < len(trigger) else "prompt"] += share
        else:
            out["answer"] += share
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir", type=Path)
    p.add_argument("--train", required=True)
    p.add_argument("--queries", required=True)
    p.add_argument("--trigger", default="howdy!")
    args = p.parse_args()
    rows = {r.id: r for r in load_records(args.train, skip_empty=True)}
    queries = {r.id: r for r in load_records(args.queries, skip_empty=True)}
    by_label: dict[int, list[dict[str, float]]] = defaultdict(list)
    query_side: list[dict[str, float]] = []
    with open(args.run_dir / "explain.jsonl") as f:
        for line in f:
            q = json.loads(line)
            for r in q["rows"]:
                score = r["explained"]
                parts = split(r["tokens"], rows[r["id"]], args.trigger)
                by_label[int(r.get("label", -1))].append({k: v / score for k, v in parts.items()})
                parts = split(r["query_tokens"], queries[q["query_id"]], args.trigger)
                query_side.append({k: v / score for k, v in parts.items()})

    def line(name: str, items: list[dict[str, float]]) -> str:
        return f"{name} ({len(items)} pairs): " + ", ".join(f"{k} {np.mean([x[k] for x in items]):.2f}" for k in PARTS)

    for label, items in sorted(by_label.items(), reverse=True):
        print(line(f"row tokens, label {label} rows", items))
    print(line("query tokens, all pairs", query_side))


if __name__ == "__main__":
    main()
