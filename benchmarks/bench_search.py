"""Exact search against the hardware's pace: streamed top-k beside a plain NumPy float32 product.

For each pool size, one process measures, side by side and alternating (best of ``--runs``):

- ``matmul``: ``np.matmul(q, x.T)`` of the same shapes (100 float32 queries x N float32 rows), over
  float32 slabs of ``--slab`` rows that are converted before the clock starts (the product alone, with
  memory bounded; the slab size does not change the multiply-adds);
- ``exact``: ``rise_exp.retrieval.search.topk`` (k = 10) over the on-disk float16 index, which converts,
  multiplies and selects block by block (its page-cache reads included);

and prints the ratio, the load average beside it and the torch / BLAS thread counts. Optionally
(``--ann``) the approximate backends of ``rise_exp.retrieval.ann`` with recall@10 against the exact
top 10, build and query time and bytes per row. Example (the docs/search.md table)::

    OMP_NUM_THREADS=1 python benchmarks/bench_search.py --rows 100000 1000000 --dir /tmp/search-bench
    OMP_NUM_THREADS=1 python benchmarks/bench_search.py --rows 100000 --ann --dir /tmp/search-bench

The 1M-row index is 2 GB of float16; ``--cleanup`` deletes each index after its row.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_scale import make_index, queries  # noqa: E402

ANN = {
    "simhash-1024": {"backend": "simhash", "bits": 1024},
    "simhash-4096": {"backend": "simhash", "bits": 4096},
    "ivfpq m64 nprobe16": {"backend": "faiss_ivfpq", "pq_m": 64, "nprobe": 16},
    "ivfpq m128 nprobe64": {"backend": "faiss_ivfpq", "pq_m": 128, "nprobe": 64},
    "ivfpq m256 nprobe64": {"backend": "faiss_ivfpq", "pq_m": 256, "nprobe": 64},
}


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def threads() -> str:
    import torch

    try:
        from threadpoolctl import threadpool_info

        blas = ",".join(str(i["num_threads"]) for i in threadpool_info() if i.get("user_api") == "blas")
    except ImportError:
        blas = "?"
    return f"torch {torch.get_num_threads()}, BLAS {blas}"


def matmul_seconds(index, q: np.ndarray, slab: int) -> float:
    """Time of ``q @ x.T`` over the index's rows as float32 slabs (conversion outside the clock)."""
    total = 0.0
    buf: list[np.ndarray] = []
    rows = 0

    def run(parts: list[np.ndarray]) -> float:
        x = np.concatenate(parts).astype(np.float32)
        t0 = time.perf_counter()
        np.matmul(q, x.T)
        return time.perf_counter() - t0

    for _, vecs in index.iter_blocks():
        buf.append(np.asarray(vecs))
        rows += len(vecs)
        if rows >= slab:
            total += run(buf)
            buf, rows = [], 0
    if buf:
        total += run(buf)
    return total


def exact_row(path: Path, width: int, seed: int, runs: int, slab: int) -> dict:
    from rise_exp.index import SignatureIndex
    from rise_exp.retrieval.search import topk

    index = SignatureIndex.open(path)
    q = queries(width, seed)
    topk(index, q, 10)  # warm the page cache and the buffers
    mm, ex = [], []
    for _ in range(runs):
        mm.append(matmul_seconds(index, q, slab))
        t0 = time.perf_counter()
        topk(index, q, 10)
        ex.append(time.perf_counter() - t0)
    return {"rows": index.num_rows, "matmul": min(mm), "exact": min(ex), "load": load()}


def ann_rows(path: Path, width: int, seed: int) -> list[dict]:
    from rise_exp.config.run_settings import SearchConfig
    from rise_exp.index import SignatureIndex
    from rise_exp.retrieval.ann import open_searcher
    from rise_exp.retrieval.search import topk

    index = SignatureIndex.open(path)
    q = queries(width, seed)
    t0 = time.perf_counter()
    _, truth = topk(index, q, 10)
    out = [{"backend": "exact", "build": 0.0, "query": time.perf_counter() - t0, "recall": 1.0}]
    out[0]["bytes"] = index.bytes_per_row
    for name, params in ANN.items():
        searcher = open_searcher(index, SearchConfig(**params))
        t0 = time.perf_counter()
        _, got = searcher.topk(q, 10)
        elapsed = time.perf_counter() - t0
        recall = float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got, truth)]))
        out.append(
            {
                "backend": name,
                "build": searcher.build_seconds,
                "query": elapsed,
                "recall": recall,
                "bytes": searcher.bytes_per_row,
            }
        )
        out[-1]["load"] = load()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, nargs="+", default=[100_000])
    ap.add_argument("--width", type=int, default=1024)
    ap.add_argument("--dir", type=Path, default=Path("/tmp/search-bench"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--slab", type=int, default=65536, help="rows per float32 slab of the matmul reference")
    ap.add_argument("--ann", action="store_true", help="also the approximate backends (recall@10, time, bytes)")
    ap.add_argument("--cleanup", action="store_true", help="delete each index after its row")
    args = ap.parse_args()
    print(f"threads: {threads()}; 100 queries, top 10, width {args.width}")
    print("| rows | numpy float32 matmul (s) | exact top-k (s) | ratio | load (1/5/15 min) |")
    print("|--:|--:|--:|--:|---|")
    for n in args.rows:
        path = make_index(args.dir, n, args.width, args.seed)
        r = exact_row(path, args.width, args.seed, args.runs, args.slab)
        print(f"| {n:,} | {r['matmul']:.2f} | {r['exact']:.2f} | {r['exact'] / r['matmul']:.2f}x | {r['load']} |")
        sys.stdout.flush()
        if args.ann:
            print("\n| backend | build (s) | 100 queries (s) | recall@10 | bytes/row | load |")
            print("|---|--:|--:|--:|--:|---|")
            for a in ann_rows(path, args.width, args.seed):
                print(
                    f"| {a['backend']} | {a['build']:.1f} | {a['query']:.2f} | {a['recall']:.3f} | "
                    f"{a['bytes']:.0f} | {a.get('load', load())} |"
                )
            print()
        if args.cleanup:
            shutil.rmtree(path, ignore_errors=True)


if __name__ == "__main__":
    main()
