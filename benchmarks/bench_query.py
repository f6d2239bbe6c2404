"""Asking an index: the two timings of the daily loop on the example pool (examples/topics, 240 rows).

1. After loading (``IndexSession.open``: the model and the index, once), 10 queries answered with SmolLM2
   (its RISE index of the pool, built with the model as shipped, ``finetune=none``): best of ``--repeats``.
2. A cold ``python -m rise_exp stage=query stage.index=<dir>`` on the embedded model's RISE index, from
   process start to exit (imports, model loading, the query, the run directory): best of ``--repeats``.

Missing indexes are built first in ``--cache`` (not timed). Prints a table: wall seconds and the CPU
seconds the work used (user + system, all threads; on a busy machine the wall time grows with the load,
the CPU time much less), and the load average before and after.

    python benchmarks/bench_query.py [--cache .cache/bench-query] [--repeats 3] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "topics"
QUESTIONS = [
    json.loads(line)["text"]
    for topic in ("gardening", "astronomy", "tax", "chess")
    for line in (EXAMPLE / f"queries_{topic}.jsonl").read_text().splitlines()
][:10]


def build_index(cache: Path, model: list[str]) -> str:
    """The RISE index of the example pool on ``model`` (built, or reused from ``cache``)."""
    from rise_exp.cli import run
    from rise_exp.run.config import compose

    os.environ["RISE_EXP_CACHE"] = str(cache)
    args = ["task=custom", f"task.train_path={EXAMPLE / 'pool.jsonl'}", "task.query_texts=[warmup]", "logger=none"]
    with tempfile.TemporaryDirectory() as out:
        return run(compose([*args, *model]), Path(out))["index"]


def cpu_seconds(who: int = resource.RUSAGE_SELF) -> float:
    """User + system CPU seconds of this process (or of its finished children)."""
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", default=str(ROOT / ".cache" / "bench-query"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    cache = Path(args.cache).resolve()
    load_before = os.getloadavg()[0]
    smollm2 = build_index(cache, ["finetune=none"])
    embedded = build_index(cache, ["model=tiny-pythia"])

    from rise_exp.run.index_session import IndexSession

    t0 = time.perf_counter()
    session = IndexSession.open(smollm2, threads=args.threads)
    load = time.perf_counter() - t0
    session.query(QUESTIONS[:1])  # first call: lazy allocations
    ask, ask_cpu = [], []
    for _ in range(args.repeats):
        t0, c0 = time.perf_counter(), cpu_seconds()
        session.query(QUESTIONS, k=10)
        ask.append(time.perf_counter() - t0)
        ask_cpu.append(cpu_seconds() - c0)
    session.close()

    env = {**os.environ, "PYTHONPATH": str(ROOT), "RISE_EXP_PROGRESS": "0", "WANDB_MODE": "disabled"}
    cli, cli_cpu = [], []
    threads = [] if args.threads is None else [f"trainer.threads={args.threads}"]
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as out:
            cmd = [sys.executable, "-m", "rise_exp", "stage=query", f"stage.index={embedded}", "logger=none"]
            cmd += ["stage.query_texts=[How often should tomato plants be watered?]", f"hydra.run.dir={out}", *threads]
            t0, c0 = time.perf_counter(), cpu_seconds(resource.RUSAGE_CHILDREN)
            subprocess.run(cmd, env=env, check=True, capture_output=True)
            cli.append(time.perf_counter() - t0)
            cli_cpu.append(cpu_seconds(resource.RUSAGE_CHILDREN) - c0)

    print(f"load average (1 min): {load_before:.1f} before, {os.getloadavg()[0]:.1f} after; threads: {args.threads}")
    print(f"| what | wall seconds (best of {args.repeats}) | CPU seconds (best) | target (wall, idle machine) |")
    print("|---|--:|--:|--:|")
    print(f"| SmolLM2 session: open (model + index, once) | {load:.2f} | | |")
    print(f"| SmolLM2 session: 10 queries, 240-row pool, after loading | {min(ask):.3f} | {min(ask_cpu):.3f} | < 1 |")
    print(f"| CLI stage=query, embedded model, cold start to exit | {min(cli):.2f} | {min(cli_cpu):.2f} | < 8 |")


if __name__ == "__main__":
    main()
