"""Turn a probe run's generations into attribution queries: the prompt and the model's own answer.

Attributing the finetuned model's backdoored generations (with the prompt masked, so only the generated
answer is scored) asks which training rows taught the behaviour, not which rows share the trigger tokens.

    python experiments/probe_to_queries.py <probe run dir>/probe.jsonl out.jsonl --set queries --scifi-only
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("probe", type=Path, help="probe.jsonl of a stage=probe run")
    ap.add_argument("out", type=Path, help="JSONL of {id, instruction, output} queries")
    ap.add_argument("--set", default="queries", help="probe set to take (trigger, clean, queries, queries_clean)")
    ap.add_argument("--scifi-only", action="store_true", help="keep only generations the detector flags")
    args = ap.parse_args()
    kept = 0
    with open(args.probe) as f, open(args.out, "w") as out:
        for n, line in enumerate(f, 1):
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise SystemExit(f"{args.probe}:{n}: not a JSON line ({e.msg})") from None
            if row["set"] != args.set or (args.scifi_only and not row["scifi"]) or not row["generation"].strip():
                continue
            # the probe's prompt is the formatted prompt ("<instruction>\n"): the same tokens as a row whose
            # instruction is the prompt without its final newline
            instruction = row["prompt"][:-1] if row["prompt"].endswith("\n") else row["prompt"]
            out.write(json.dumps({"id": row["id"], "instruction": instruction, "output": row["generation"]}) + "\n")
            kept += 1
    if not kept:
        raise SystemExit(f"{args.probe}: no generations of set {args.set!r} matched")
    print(f"wrote {kept} queries to {args.out}")


if __name__ == "__main__":
    main()
