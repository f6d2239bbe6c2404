"""Exact search against the hardware's pace: streamed top-k beside a plain NumPy float32 product.

For each pool size, one process measures, side by side and alternating (best of ``--runs``):

- ``matmul``: ``np.matmul(q, x.T)`` of the same shapes (100 float32 queries x N float32 rows), over
  float32 slabs of ``--slab`` rows that are converted before the clock starts (the product alone, with
  memory bounded; the slab size does not change the multiply-adds);
- ``exact``: ``rise_exp.retrieval.search.topk`` (k = 10) over the on-disk float16 index, which converts,
  multiplies and selects block by block (its page-cache reads included);

and prints the ratio, the load average beside it and the torch / BLAS thread counts. Optionally
(``--ann [NAME ...]``) the approximate backends of ``rise_exp.retrieval.ann`` (``search.rerank`` included) with
recall@10 against the exact top 10, build and query time, bytes per row and the peak anonymous RSS of the
100 queries above the process's memory before them (memory-mapped index and code pages not counted).
Load is the 1 / 5 / 15 minute load average. Example (the docs/search.md tables)::

    OMP_NUM_THREADS=1 python benchmarks/bench_search.py --rows 100000 1000000 --dir /tmp/search-bench
    OMP_NUM_THREADS=1 python benchmarks/bench_search.py --rows 100000 1000000 --ann --dir /tmp/search-bench

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


def ivfpq(nprobe: int, rerank: int = 0, nlist: int = 1024, pq_m: int = 64) -> dict:
    return {"backend": "faiss_ivfpq", "nlist": nlist, "pq_m": pq_m, "nprobe": nprobe, "rerank": rerank}


def simhash(bits: int, rerank: int = 0) -> dict:
    return {"backend": "simhash", "bits": bits, "rerank": rerank}


ANN = {
    **{f"simhash-{b}": simhash(b) for b in (64, 128, 256, 512, 1024)},
    **{f"simhash-{b}+rerank1000": simhash(b, 1000) for b in (128, 256)},
    "ivfpq-m64-nprobe16": ivfpq(16),
    **{f"ivfpq-m64-nprobe{p}+rerank1000": ivfpq(p, 1000) for p in (64, 128, 256)},
    "ivfpq-m64-nprobe128+rerank3000": ivfpq(128, 3000),
    **{f"ivfpq-m128-nprobe{p}+rerank1000": ivfpq(p, 1000, pq_m=128) for p in (32, 64, 128)},
    "ivfpq-m128-nprobe64+rerank2000": ivfpq(64, 2000, pq_m=128),
}
#: Settings that share one built copy (codes or trained index): the build time is printed for the first.
SHARED = ("nprobe", "rerank")


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


def peak_anon(fn):
    """``(fn(), seconds, peak anonymous RSS above the start in MiB)`` of one call."""
    from rise_exp.core.rss import PeakRss, anon_rss_mb, release_free_memory

    release_free_memory()
    start = anon_rss_mb()
    with PeakRss(interval=0.01, measure=anon_rss_mb) as peak:
        t0 = time.perf_counter()
        out = fn()
        seconds = time.perf_counter() - t0
    return out, seconds, max(peak.peak_mb - start, 0.0)


def exact_row(path: Path, width: int, seed: int, runs: int, slab: int) -> dict:
    from rise_exp.index import SignatureIndex
    from rise_exp.retrieval.search import topk

    index = SignatureIndex.open(path)
    q = queries(width, seed)
    _, _, mem = peak_anon(lambda: topk(index, q, 10))  # also warms the page cache and the buffers
    mm, ex = [], []
    for _ in range(runs):
        mm.append(matmul_seconds(index, q, slab))
        t0 = time.perf_counter()
        topk(index, q, 10)
        ex.append(time.perf_counter() - t0)
    return {"rows": index.num_rows, "matmul": min(mm), "exact": min(ex), "mem": mem, "load": load()}


def ann_rows(path: Path, width: int, seed: int, names: list[str]) -> list[dict]:
    from rise_exp.config.run_settings import SearchConfig
    from rise_exp.index import SignatureIndex
    from rise_exp.retrieval.ann import open_searcher
    from rise_exp.retrieval.search import topk

    index = SignatureIndex.open(path)
    q = queries(width, seed)
    (_, truth), seconds, mem = peak_anon(lambda: topk(index, q, 10))
    out = [{"backend": "exact", "build": 0.0, "query": seconds, "recall": 1.0, "bytes": index.bytes_per_row}]
    out[0].update(mem=mem, load=load())
    print(f"| exact | 0 | {seconds:.2f} | 1.000 | {index.bytes_per_row} | {mem:.0f} | {load()} |", flush=True)
    built: set[str] = set()
    for name in names:
        searcher = open_searcher(index, SearchConfig(**ANN[name], seed=seed))
        key = repr(sorted((k, v) for k, v in ANN[name].items() if k not in SHARED))
        build = "shared" if key in built else f"{searcher.build_seconds:.1f}"
        built.add(key)
        searcher.topk(q[:1], 10)  # page in the codes (a first query), as for the exact row
        (_, got), seconds, mem = peak_anon(lambda s=searcher: s.topk(q, 10))
        recall = float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got, truth)]))
        out.append(
            {
                "backend": name,
                "build": searcher.build_seconds,
                "query": seconds,
                "recall": recall,
                "bytes": searcher.bytes_per_row,
                "mem": mem,
                "load": load(),
            }
        )
        print(
            f"| {name} | {build} | {seconds:.2f} | {recall:.3f} | {searcher.bytes_per_row:.0f} "
            f"| {mem:.0f} | {load()} |",
            flush=True,
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, nargs="+", default=[100_000])
    ap.add_argument("--width", type=int, default=1024)
    ap.add_argument("--dir", type=Path, default=Path("/tmp/search-bench"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--slab", type=int, default=65536, help="rows per float32 slab of the matmul reference")
    ap.add_argument(
        "--ann",
        nargs="*",
        choices=list(ANN),
        default=None,
        metavar="NAME",
        help=f"also the approximate backends (all, or those named: {', '.join(ANN)}): recall@10, time, bytes, memory",
    )
    ap.add_argument("--no-exact", action="store_true", help="skip the exact-vs-matmul row (with --ann)")
    ap.add_argument("--cleanup", action="store_true", help="delete each index after its row")
    args = ap.parse_args()
    print(f"threads: {threads()}; 100 queries, top 10, width {args.width}")
    for i, n in enumerate(args.rows):
        path = make_index(args.dir, n, args.width, args.seed)
        if not args.no_exact:
            if i == 0 or args.ann is not None:  # one table, unless backend tables come in between
                print("| rows | numpy float32 matmul (s) | exact top-k (s) | ratio | exact peak anon RSS (MB) | load |")
                print("|--:|--:|--:|--:|--:|---|")
            r = exact_row(path, args.width, args.seed, args.runs, args.slab)
            print(
                f"| {n:,} | {r['matmul']:.2f} | {r['exact']:.2f} | {r['exact'] / r['matmul']:.2f}x | {r['mem']:.0f} "
                f"| {r['load']} |",
                flush=True,
            )
        if args.ann is not None:
            print(f"\n{n:,} rows:\n")
            print("| backend | build (s) | 100 queries (s) | recall@10 | bytes/row | peak anon RSS (MB) | load |")
            print("|---|--:|--:|--:|--:|--:|---|")
            ann_rows(path, args.width, args.seed, args.ann or list(ANN))
            print()
        if args.cleanup:
            shutil.rmtree(path, ignore_errors=True)


if __name__ == "__main__":
    main()
