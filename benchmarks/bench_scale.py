"""Search at scale: 100 queries over 10k / 100k / 1M stored vectors, exact streaming vs SimHash vs FAISS.

Each (rows, backend) point runs in a fresh subprocess (so peak RSS is that point's alone) over an on-disk
float16 index of synthetic clustered unit vectors (written once per size under ``--dir``), and reports
the searcher's build time, the time of 100 queries (top 10), peak RSS (the kernel's, which also counts
the pages of memory-mapped index and code files the process touched) and peak anonymous RSS (what the
process allocated, sampled every 10 ms), and recall@10 against the exact search. Example (docs/results.md)::

    python benchmarks/bench_scale.py --rows 10000 100000 1000000 --width 1024 --dir /tmp/scale-bench

Index builds at scale (tokens/s and memory of an embedded-model build at 1k / 10k / 100k rows):
``benchmarks/bench_build_scale.py``.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

BACKENDS = {
    "exact": {},
    "simhash-1024": {"backend": "simhash", "bits": 1024},
    "simhash-8192": {"backend": "simhash", "bits": 8192},
    "faiss_ivfpq": {"backend": "faiss_ivfpq", "pq_m": 64, "nprobe": 16},
}


def make_index(root: Path, rows: int, width: int, seed: int, block: int = 16384) -> Path:
    """A float16 index of clustered unit vectors (cached per size, width and seed)."""
    from rise_exp.index import IndexWriter

    path = root / f"synthetic-{rows}-{width}-s{seed}"
    if (path / "manifest.json").is_file() and json.loads((path / "manifest.json").read_text())["status"] == "complete":
        return path
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((256, width)).astype(np.float32)
    w = IndexWriter(path, dim=width, num_rows=rows, manifest={"method": "synthetic"}, dtype="float16")
    for b, start in enumerate(range(0, rows, block)):
        ids = np.arange(start, min(start + block, rows))
        x = centers[rng.integers(0, 256, len(ids))] + rng.standard_normal((len(ids), width), dtype=np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        w.write_block(b, ids, x.astype(np.float16))
    w.finalize()
    return path


def queries(width: int, seed: int, n: int = 100) -> np.ndarray:
    q = np.random.default_rng(seed + 1).standard_normal((n, width)).astype(np.float32)
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def point(path: str, backend: str, width: int, seed: int, exact_rows: str) -> dict:
    """One measurement, in this (fresh) process."""
    from rise_exp.config.run_settings import SearchConfig
    from rise_exp.core.rss import PeakRss, anon_rss_mb
    from rise_exp.index import SignatureIndex
    from rise_exp.retrieval.ann import open_searcher

    index = SignatureIndex.open(path, verify="lazy")
    q = queries(width, seed)
    with PeakRss(interval=0.01, measure=anon_rss_mb) as anon:
        t0 = time.perf_counter()
        searcher = open_searcher(index, SearchConfig(**BACKENDS[backend], seed=seed))
        build = time.perf_counter() - t0
        t0 = time.perf_counter()
        _, rows = searcher.topk(q, 10)
        seconds = time.perf_counter() - t0
    out = {"build_s": build, "query_s": seconds, "bytes_per_row": searcher.bytes_per_row, "peak_anon_mb": anon.peak_mb}
    if backend == "exact":
        np.save(exact_rows, rows)
    else:
        ref = np.load(exact_rows)
        out["recall@10"] = float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(rows, ref)]))
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--width", type=int, default=1024)
    ap.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=list(BACKENDS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dir", type=Path, default=Path("/tmp/rise-exp-bench-scale"))
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--point", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.point:
        print(json.dumps(point(args.point[0], args.point[1], args.width, args.seed, args.point[2])))
        return
    args.dir.mkdir(parents=True, exist_ok=True)
    results = []
    print("| rows | backend | bytes/row | build s | 100 queries s | peak RSS MB | peak anon MB | recall@10 |")
    print("|--:|---|--:|--:|--:|--:|--:|--:|")
    for n in args.rows:
        path = make_index(args.dir, n, args.width, args.seed)
        exact_rows = str(args.dir / f"exact-{n}-{args.width}.npy")
        for backend in ["exact", *[b for b in args.backends if b != "exact"]]:
            cmd = [sys.executable, __file__, "--point", str(path), backend, exact_rows]
            cmd += ["--width", str(args.width), "--seed", str(args.seed)]
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode:
                print(f"| {n} | {backend} | failed: {done.stderr.strip().splitlines()[-1]} ||||||", flush=True)
                continue
            r = {"rows": n, "backend": backend, **json.loads(done.stdout.strip().splitlines()[-1])}
            results.append(r)
            rec = f"{r['recall@10']:.3f}" if "recall@10" in r else "1 (reference)"
            print(
                f"| {n:,} | {backend} | {r['bytes_per_row']:.0f} | {r['build_s']:.2f} | {r['query_s']:.2f} "
                f"| {r['peak_rss_mb']:.0f} | {r['peak_anon_mb']:.0f} | {rec} |",
                flush=True,
            )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
