"""Index builds at scale: RISE over 1k / 10k / 100k-row pools with the embedded model, streamed vs loaded.

Each (rows, pool) point runs in a fresh subprocess, so its peak RSS is its own: the process loads the
embedded tiny-pythia (random weights: throughput does not depend on them), opens the pool either streamed
(``task.stream=true``: a memory-mapped Arrow ``ArrowPool``, rows encoded lazily) or loaded (a list of
records, the default), and builds the RISE index (default sketch settings, ``--block-rows`` rows per on-disk
block: the index writer holds one block of float32 signatures, ``block_rows x dim x 4`` bytes, so the
default 512 makes that buffer full-size already at 1k rows) into a fresh directory. It
reports build seconds, tokens (forwarded) per second, and memory: the anonymous RSS before the build (model
and libraries loaded), its peak during the build (``RssAnon`` of ``/proc/self/status``, sampled every 10 ms)
and what the build added, plus the kernel's peak RSS (``ru_maxrss``), which also counts file pages the
process maps (the finished index is memory-mapped and checksummed, so that part grows with the index
size on disk, not with what the process allocates). Pools are synthetic JSONL rows of 20-80
words (written once per size under ``--dir``). Example (docs/results.md)::

    OMP_NUM_THREADS=1 python benchmarks/bench_build_scale.py --rows 1000 10000 100000 --dir /tmp/build-bench
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import time
from pathlib import Path

WORDS = (
    "the a of to and in is for on with as by at from market rate bank loan patient dose cell gene model data "
    "star ship planet crew signal orbit river city garden music paint story night morning table window paper "
    "quick slow bright dark warm cold green small large early late open closed simple careful"
).split()


def make_pool(root: Path, rows: int, seed: int = 0) -> Path:
    """A JSONL pool of ``rows`` instruction rows (cached per size)."""
    path = root / f"pool-{rows}.jsonl"
    if path.is_file():
        return path
    rng = random.Random(seed)
    tmp = path.with_suffix(".tmp")
    with tmp.open("w") as fh:
        for i in range(rows):
            instr = " ".join(rng.choices(WORDS, k=rng.randint(5, 15)))
            out = " ".join(rng.choices(WORDS, k=rng.randint(15, 65)))
            fh.write(json.dumps({"id": f"r{i}", "instruction": instr, "output": out, "label": int(i % 11 == 0)}) + "\n")
    tmp.rename(path)
    return path


def rss_windows(series: list[tuple[float, float]], windows: int) -> list[list[float]]:
    """``[start s, end s, min MB, max MB]`` of the sampled memory over ``windows`` equal time windows."""
    end = series[-1][0] if series else 0.0
    out = []
    for w in range(windows):
        a, b = end * w / windows, end * (w + 1) / windows
        vals = [m for t, m in series if a <= t < b or (w == windows - 1 and t == end)]
        if vals:
            out.append([a, b, min(vals), max(vals)])
    return out


def point(pool_path: str, mode: str, root: str, block_rows: int, trace: int = 0) -> dict:
    """One build, in this (fresh) process; ``trace`` > 0 also returns the memory over that many windows."""
    import torch

    from rise_exp.config.model import ModelConfig
    from rise_exp.config.trainer import TrainerConfig
    from rise_exp.core.rss import PeakRss, anon_rss_mb
    from rise_exp.data.arrow_pool import ArrowPool
    from rise_exp.data.encoding import EncodedPool
    from rise_exp.data.loaders import load_jsonl
    from rise_exp.methods.base import MethodContext
    from rise_exp.methods.rise.method import RiseMethod
    from rise_exp.models.embedded import prepare_embedded
    from rise_exp.models.loading import load_pretrained
    from rise_exp.run.config import compose

    torch.set_num_threads(1)
    spec = ModelConfig.from_mapping(dict(compose(["model=tiny-pythia"]).model))
    texts = [" ".join(WORDS)] * 4  # one fixed tokenizer for every pool size
    model, tok = load_pretrained(prepare_embedded(spec, texts, Path(root) / "cache"))
    pool = ArrowPool.load(pool_path, cache_dir=str(Path(root) / "hf")) if mode == "streamed" else load_jsonl(pool_path)
    before = anon_rss_mb()
    trainer = TrainerConfig(accelerator="cpu", devices=1, precision="32-true")
    work = Path(root) / f"work-{mode}-{len(pool)}-{time.time_ns()}"
    ctx = MethodContext(model=model.eval(), tokenizer=tok, work_dir=work, trainer=trainer, model_id="bench")
    method = RiseMethod({"name": "rise", "index": {"dir": str(work / "index"), "block_rows": block_rows}}, ctx)
    series: list[tuple[float, float]] = []
    t0 = time.perf_counter()

    def measure() -> float:
        mb = anon_rss_mb()
        series.append((time.perf_counter() - t0, mb))
        return mb

    with PeakRss(interval=0.01, measure=measure) as sampler:
        t0 = time.perf_counter()
        method.build(pool)
        seconds = time.perf_counter() - t0
    peak_anon = sampler.peak_mb
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    tokens = sum(len(r) for r in EncodedPool(pool, tok))
    return {
        "seconds": seconds,
        "tokens": tokens,
        "anon_before_mb": before,
        "anon_peak_mb": peak_anon,
        "maxrss_mb": peak,
        **({"trace": rss_windows(series, trace)} if trace else {}),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    ap.add_argument("--pools", nargs="+", default=["streamed", "loaded"], choices=["streamed", "loaded"])
    ap.add_argument("--dir", type=Path, default=Path("/tmp/rise-exp-bench-build"))
    ap.add_argument("--block-rows", type=int, default=512)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--trace", type=int, default=0, help="also print min/max memory over this many time windows")
    ap.add_argument("--point", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.point:
        print(json.dumps(point(args.point[0], args.point[1], str(args.dir), args.block_rows, args.trace)))
        return
    args.dir.mkdir(parents=True, exist_ok=True)
    results = []
    print(
        "| rows | pool | build s | tokens/s | anon RSS before MB | anon peak MB | added by the build MB | maxrss MB |"
    )
    print("|--:|---|--:|--:|--:|--:|--:|--:|")
    for n in args.rows:
        path = make_pool(args.dir, n)
        for mode in args.pools:
            done = subprocess.run(
                [sys.executable, __file__, "--point", str(path), mode, "--dir", str(args.dir)]
                + ["--block-rows", str(args.block_rows), "--trace", str(args.trace)],
                capture_output=True,
                text=True,
            )
            if done.returncode:
                print(f"| {n:,} | {mode} | failed: {done.stderr.strip().splitlines()[-1]} |||||", flush=True)
                continue
            r = {"rows": n, "pool": mode, **json.loads(done.stdout.strip().splitlines()[-1])}
            results.append(r)
            print(
                f"| {n:,} | {mode} | {r['seconds']:.1f} | {r['tokens'] / r['seconds']:,.0f} "
                f"| {r['anon_before_mb']:.0f} | {r['anon_peak_mb']:.0f} "
                f"| {r['anon_peak_mb'] - r['anon_before_mb']:.0f} | {r['maxrss_mb']:.0f} |",
                flush=True,
            )
            for a, b, lo, hi in r.get("trace", []):
                print(f"|   {a:6.0f}-{b:6.0f} s | min {lo:.0f} MB | max {hi:.0f} MB |", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
