"""Cost of every attribution method on the same model and pool: build time, storage, memory, queries, auPRC@10.

One command runs every method under the attribute protocol on the embedded default (tiny-pythia,
synthetic Howdy). The task and the shared finetuned model are prepared once here
(``rise_exp.run.pipeline.prepare``, cached on disk); then each method runs in a fresh subprocess
(``--single METHOD``) so its peak resident memory is its own. Per method it reports

- ``build_s``: ``method.build(train)`` (index or preparation time; the shared finetune is not included),
- ``bytes_per_row``: ``method.index_bytes / N``,
- ``peak_rss_mb``: the subprocess's peak RSS, and ``rss_over_base_mb``: its rise over the peak right
  after ``prepare`` (what the method itself added),
- ``query_s_per_100``: ``method.score`` time for 100 queries (the synthetic generator has 56 distinct
  Howdy queries; the distinct ones are repeated cyclically up to ``--queries``),
- ``auprc@10``: ``rise_exp.retrieval.metrics.retrieval_metrics`` on the distinct queries only.

It also prints the analytic storage per row of RISE and RapidIn at the paper's dims (their composed
``method=rise`` / ``method=rapidin`` settings, not measured).

    python benchmarks/bench_methods.py [--methods rise,bm25,rapidin,zo_inf,stride[,ekfac,trackstar]] [--n-train 500]
        [--queries 100] [--json PATH] [hydra overrides ...] [METHOD:override ...]

Overrides apply to every method's config (e.g. ``model.layers=1``); ``METHOD:key=value`` applies to
one method only (e.g. ``rapidin:method.k=4096``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a plain script from anywhere
    sys.path.insert(0, str(REPO))

from rise_exp.core.errors import ConfigError, RiseError, allowed  # noqa: E402
from rise_exp.core.rss import process_peak_rss_mb as peak_rss_mb  # noqa: E402
from rise_exp.data.records import Record  # noqa: E402
from rise_exp.run.config import RunConfig, compose  # noqa: E402

METHOD_NAMES: tuple[str, ...] = ("rise", "bm25", "rapidin", "zo_inf", "stride", "ekfac", "trackstar")
#: What runs without --methods: the paper's methods (ekfac / trackstar need their libraries, `make venv` has them).
DEFAULT_METHODS: tuple[str, ...] = METHOD_NAMES[:5]
HOWDY_DISTINCT_QUERIES = 56  # rise_exp.data.synthetic.howdy: the distinct triggered queries it can draw
TABLE_COLUMNS: tuple[str, ...] = (
    "method",
    "build_s",
    "bytes_per_row",
    "peak_rss_mb",
    "rss_over_base_mb",
    "query_s_per_100",
    "auprc@10",
)
RECORD_KEYS: tuple[str, ...] = (*TABLE_COLUMNS, "model", "n_train", "n_queries")
DTYPE_BYTES: dict[str, int] = {"float16": 2, "bfloat16": 2, "float32": 4}
PAPER_CLAIM = 112.0  # "reduces index storage by up to 112x compared to RapidIn" (RISE abstract)

# ---------------------------------------------------------------- arguments and configs


def parse_methods(text: str) -> list[str]:
    """``"rise,bm25"`` -> ``["rise", "bm25"]``; unknown names raise ConfigError."""
    names = [m.strip() for m in text.split(",") if m.strip()]
    if not names:
        raise ConfigError(f"--methods must name at least one of {', '.join(METHOD_NAMES)}; got {text!r}")
    for m in names:
        if m not in METHOD_NAMES:
            raise allowed("--methods entry", m, METHOD_NAMES)
    return names


def split_overrides(overrides: Sequence[str]) -> tuple[list[str], dict[str, list[str]]]:
    """Separate overrides for every method from ``METHOD:key=value`` ones for a single method."""
    common: list[str] = []
    per_method: dict[str, list[str]] = {m: [] for m in METHOD_NAMES}
    for o in overrides:
        m = re.match(r"^([a-z_0-9]+):([^=]+=.*)$", o)
        if m and m.group(1) in METHOD_NAMES:
            per_method[m.group(1)].append(m.group(2))
        elif m and "=" not in o.split(":", 1)[0]:
            raise allowed(f"method prefix of override {o!r}", m.group(1), METHOD_NAMES)
        else:
            common.append(o)
    return common, per_method


def query_count(requested: int, overrides: Sequence[str]) -> int:
    """Distinct queries to ask the task for: ``requested``, capped for the synthetic Howdy generator.

    An explicit ``task.n_queries=`` override wins; the cap applies only to the default synthetic Howdy task.
    """
    if any(o.startswith(("task.n_queries=", "task=", "task.source=")) for o in overrides):
        return requested
    return min(requested, HOWDY_DISTINCT_QUERIES)


def compose_config(method: str, n_train: int, n_queries: int, overrides: Sequence[str]) -> RunConfig:
    """The default run config for ``method`` with the benchmark's sizes, no logger, then ``overrides``."""
    base = [f"method={method}", f"task.n_train={n_train}", f"task.n_queries={n_queries}", "logger=none"]
    return RunConfig.from_cfg(compose([*base, *overrides]))


def timed_queries(queries: Sequence[Record], target: int) -> tuple[list[Record], str]:
    """The queries to time: ``queries`` repeated cyclically up to ``target`` rows (first len(queries) unchanged).

    Repeats get distinct ids (``<id>#rep<k>``). Returns the list and a sentence saying what was done.
    """
    if target < 1:
        raise ConfigError(f"--queries must be >= 1; got {target}")
    if not queries:
        raise ConfigError("the task produced no queries to time")
    n = len(queries)
    out = list(queries[:target])
    k = 1
    while len(out) < target:
        out += [dataclasses.replace(q, id=f"{q.id}#rep{k}") for q in queries[: target - len(out)]]
        k += 1
    if n >= target:
        note = f"{target} distinct queries timed and evaluated"
    else:
        note = (
            f"{n} distinct queries (the generator's limit) repeated cyclically to {target} for timing; "
            f"auPRC@10 on the {n} distinct ones"
        )
    return out, note


# ---------------------------------------------------------------- one method, in this process


def _quiet() -> None:
    """The CLI's library quieting, plus errors only from Lightning and bm25s."""
    from rise_exp.core.quiet import quiet_libraries

    quiet_libraries()
    for name in ("lightning", "lightning.pytorch", "lightning.pytorch.utilities.rank_zero", "bm25s"):
        logging.getLogger(name).setLevel(logging.ERROR)


def measure_method(cfg: RunConfig, work_dir: Path, n_timed: int) -> dict[str, Any]:
    """Prepare, build and score one method (``cfg.method``) in this process; returns its record."""
    from rise_exp.methods.registry import method_class
    from rise_exp.retrieval.metrics import retrieval_metrics
    from rise_exp.run.pipeline import prepare
    from rise_exp.run.runner import attribution_scores, build_on

    prep = prepare(cfg, work_dir, need_model=method_class(cfg.method.name).needs_model)
    base_rss = peak_rss_mb()
    task = prep.task
    queries, note = timed_queries(task.queries, n_timed)
    built = build_on(cfg.method, prep.ctx, task.train)
    method, build_s = built.method, built.build_seconds
    scores, query_s = attribution_scores(built, queries)
    n_real = min(len(task.queries), len(queries))  # the distinct queries that were scored
    metrics = retrieval_metrics(scores[:n_real], task.labels, ks=(10,))
    peak = peak_rss_mb()
    return {
        "method": str(cfg.method.name),
        "build_s": build_s,
        "bytes_per_row": float(method.index_bytes) / len(task.train),
        "peak_rss_mb": peak,
        "rss_over_base_mb": peak - base_rss,
        "query_s_per_100": query_s * 100.0 / len(queries),
        "auprc@10": float(metrics["auprc@10"]),
        "model": str(cfg.model.name),
        "n_train": len(task.train),
        "n_queries": n_real,
        "queries_timed": len(queries),
        "query_s": query_s,
        "queries_note": note,
        "index_bytes": int(method.index_bytes),
        "base_rss_mb": base_rss,
        "p@10": float(metrics["p@10"]),
    }


def run_single(args: argparse.Namespace) -> None:
    """``--single METHOD``: measure one method and write its record to ``--record-out``."""
    _quiet()
    method = args.single
    common, per_method = split_overrides(args.overrides)
    cfg = compose_config(method, args.n_train, query_count(args.queries, common), [*common, *per_method[method]])
    record = measure_method(cfg, Path(args.work_dir), args.queries)
    Path(args.record_out).write_text(json.dumps(record))


# ---------------------------------------------------------------- the driver


def failed_record(method: str, error: str, model: str, n_train: int) -> dict[str, Any]:
    """A table row for a method whose subprocess failed (numbers NaN, the error kept)."""
    row: dict[str, Any] = {k: math.nan for k in TABLE_COLUMNS}
    row.update(method=method, model=model, n_train=n_train, n_queries=0, error=error)
    return row


def run_in_subprocess(method: str, args: argparse.Namespace, work_dir: Path) -> dict[str, Any]:
    """Measure ``method`` in a fresh interpreter (so its peak RSS is its own); returns its record."""
    out = work_dir / f"{method}.record.json"
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--single",
        method,
        "--n-train",
        str(args.n_train),
        "--queries",
        str(args.queries),
        "--work-dir",
        str(work_dir / method),
        "--record-out",
        str(out),
        *args.overrides,
    ]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout, cwd=os.getcwd())
    if proc.returncode != 0 or not out.exists():
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-15:]
        raise RuntimeError(f"method {method} failed (exit {proc.returncode}):\n" + "\n".join(tail))
    record = json.loads(out.read_text())
    record["wall_s"] = time.perf_counter() - t0
    return record


def prepare_shared(args: argparse.Namespace, methods: Sequence[str], work_dir: Path) -> dict[str, Any]:
    """Build the task and finetune the shared model once (cached on disk), before any method runs."""
    from rise_exp.methods.registry import method_class
    from rise_exp.run.pipeline import prepare

    common, per_method = split_overrides(args.overrides)
    need_model = any(method_class(m).needs_model for m in methods)
    method = next((m for m in methods if method_class(m).needs_model), methods[0])
    cfg = compose_config(method, args.n_train, query_count(args.queries, common), [*common, *per_method[method]])
    t0 = time.perf_counter()
    prep = prepare(cfg, work_dir / "prepare", need_model=need_model)
    return {
        "prepare_s": time.perf_counter() - t0,
        "model": str(cfg.model.name),
        "model_id": prep.ctx.model_id,
        "finetune_cached": bool(prep.finetune.cached) if prep.finetune else None,
        "n_train": len(prep.task.train),
        "n_distinct_queries": len(prep.task.queries),
        "checkpoints": len(prep.ctx.checkpoints),
    }


# ---------------------------------------------------------------- analytic storage at the paper's dims


def _method_yaml(name: str) -> Any:
    return compose([f"method={name}"]).method


def rise_signature_dim(kr: int, kh: int, kg: int, fusion: str) -> int:
    """Signature length of CountSketch RISE: ``rh -> kr*kh``, ``gh -> kg*kh``, ``rg -> kr*kg``, summed over
    ``fusion``."""
    sizes = {"rh": kr * kh, "gh": kg * kh, "rg": kr * kg}
    parts = fusion.split("+")
    bad = [p for p in parts if p not in sizes]
    if bad or not parts:
        raise allowed("method.fusion channel", "+".join(bad) or fusion, tuple(sizes))
    return sum(sizes[p] for p in set(parts))


def paper_storage() -> dict[str, Any]:
    """Bytes per row of RISE and RapidIn at the dims of ``method=rise`` / ``method=rapidin`` (the paper's).

    RISE: ``signature_dim * bytes(dtype)``, ``signature_dim = kr*kh + kg*kh`` for fusion rh+gh.
    RapidIn: ``K * 2`` (fp16, as the official code stores) and ``K * bytes(conf dtype)`` (ours).
    """
    rise = _method_yaml("rise")
    kr, kh, kg, fusion, rdtype = (
        int(rise["kr"]),
        int(rise["kh"]),
        int(rise["kg"]),
        str(rise["fusion"]),
        str(rise["dtype"]),
    )
    dim = rise_signature_dim(kr, kh, kg, fusion)
    rapid = _method_yaml("rapidin")
    k = int(rapid["k"])
    ours = str(rapid.get("dtype", "float32"))
    for setting, value in (("rise dtype", rdtype), ("rapidin dtype", ours)):
        if value not in DTYPE_BYTES:
            raise allowed(setting, value, tuple(DTYPE_BYTES))
    rise_bytes = dim * DTYPE_BYTES[rdtype]
    rows = [
        {"what": f"RISE {fusion} kr/kh/kg={kr}/{kh}/{kg} {rdtype}", "dims": dim, "bytes_per_row": rise_bytes},
        {"what": f"RapidIn K={k} float16 (official code)", "dims": k, "bytes_per_row": k * 2},
        {"what": f"RapidIn K={k} {ours} (method=rapidin default)", "dims": k, "bytes_per_row": k * DTYPE_BYTES[ours]},
        {"what": "RapidIn K=2^20 float16 (a larger K)", "dims": 2**20, "bytes_per_row": 2**20 * 2},
    ]
    for r in rows:
        r["ratio_vs_rise"] = r["bytes_per_row"] / rise_bytes
    return {
        "rows": rows,
        "rise_bytes": rise_bytes,
        "rapidin_fp16_bytes": k * 2,
        "rise_dims_for_claim": k * 2 / PAPER_CLAIM / DTYPE_BYTES[rdtype],
    }


def storage_lines(storage: dict[str, Any]) -> list[str]:
    """The analytic storage table and the honest comparison with the paper's 'up to 112x'."""
    from tabulate import tabulate

    table = tabulate(
        [[r["what"], r["dims"], r["bytes_per_row"], f"{r['ratio_vs_rise']:.2f}x"] for r in storage["rows"]],
        headers=["storage per row (analytic)", "dims", "bytes", "vs RISE"],
        tablefmt="github",
    )
    fp16 = storage["rows"][1]["ratio_vs_rise"]
    fp32 = storage["rows"][2]["ratio_vs_rise"]
    note = (
        f"At the paper's default dims RISE stores {fp16:.2f}x less per row than RapidIn's fp16 2^16-dim "
        f"vectors ({fp32:.2f}x less than our fp32 default). The paper's 'up to {PAPER_CLAIM:.0f}x' is not "
        f"reached at these dims: against fp16 K=2^16 it would take ~{storage['rise_dims_for_claim']:.0f}-dim "
        f"RISE signatures (much smaller sketch dims than the defaults), and even K=2^20 gives "
        f"{storage['rows'][3]['ratio_vs_rise']:.1f}x. Which RapidIn storage the paper's figure compares "
        f"to could not be verified from the sources available offline."
    )
    return [table, "", note]


# ---------------------------------------------------------------- output


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        if math.isnan(v):
            return "failed"
        return f"{v:.0f}" if abs(v) >= 1000 else f"{v:.3g}" if abs(v) < 1 else f"{v:.2f}"
    return str(v)


def format_table(records: Sequence[dict[str, Any]]) -> str:
    """The results table (GitHub Markdown) over :data:`TABLE_COLUMNS`."""
    from tabulate import tabulate

    rows = [[_fmt(r.get(c, math.nan)) for c in TABLE_COLUMNS] for r in records]
    return tabulate(rows, headers=list(TABLE_COLUMNS), tablefmt="github", disable_numparse=True)


def build_arg_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--methods", default=",".join(DEFAULT_METHODS), help="comma-separated subset of the methods")
    ap.add_argument("--n-train", type=int, default=500, help="training rows (task.n_train)")
    ap.add_argument("--queries", type=int, default=100, help="queries to time (distinct ones repeated if fewer)")
    ap.add_argument("--json", default=None, help="write the records as a JSON list here")
    ap.add_argument("--timeout", type=float, default=3600.0, help="seconds per method subprocess")
    ap.add_argument("--work-dir", default=None, help="method state (indexes, gradients); default a temp dir")
    ap.add_argument("--single", default=None, choices=METHOD_NAMES, help=argparse.SUPPRESS)
    ap.add_argument("--record-out", default=None, help=argparse.SUPPRESS)
    ap.add_argument("overrides", nargs="*", help="Hydra overrides; METHOD:key=value for one method only")
    return ap


def run_all(args: argparse.Namespace) -> dict[str, Any]:
    """Prepare once, measure each method in its own subprocess, print and optionally write the results."""
    _quiet()
    methods = parse_methods(args.methods)
    if args.n_train < 1:
        raise ConfigError(f"--n-train must be >= 1; got {args.n_train}")
    if args.queries < 1:
        raise ConfigError(f"--queries must be >= 1; got {args.queries}")
    split_overrides(args.overrides)  # fail early on a bad method prefix
    with tempfile.TemporaryDirectory(prefix="bench_methods_") as tmp:
        work_dir = Path(args.work_dir) if args.work_dir else Path(tmp)
        work_dir.mkdir(parents=True, exist_ok=True)
        shared = prepare_shared(args, methods, work_dir)
        print(
            f"model {shared['model']}, {shared['n_train']} training rows, prepare (task + shared finetune, "
            f"{'cached' if shared['finetune_cached'] else 'trained'}) {shared['prepare_s']:.1f} s",
            flush=True,
        )
        records = []
        for m in methods:
            try:
                rec = run_in_subprocess(m, args, work_dir)
            except (RuntimeError, subprocess.TimeoutExpired) as e:
                print(str(e), file=sys.stderr)
                rec = failed_record(m, str(e), shared["model"], shared["n_train"])
            print(f"  {m}: done", flush=True)
            records.append(rec)
    note = next((r["queries_note"] for r in records if "queries_note" in r), "")
    storage = paper_storage()
    print()
    print(f"queries: {note}")
    print(format_table(records))
    print()
    print("\n".join(storage_lines(storage)))
    by = {r["method"]: r for r in records}
    if (
        "rise" in by
        and "rapidin" in by
        and not math.isnan(by["rise"]["build_s"])
        and not math.isnan(by["rapidin"]["build_s"])
    ):
        ratio_bytes = by["rapidin"]["bytes_per_row"] / by["rise"]["bytes_per_row"]
        ratio_build = by["rapidin"]["build_s"] / by["rise"]["build_s"]
        print(f"\nmeasured: RapidIn/RISE bytes per row {ratio_bytes:.2f}x, build time {ratio_build:.2f}x")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(records, indent=1))
    return {"records": records, "storage": storage, "shared": shared}


def main(argv: Sequence[str] | None = None) -> dict[str, Any] | None:
    """Entry point; user errors print one line and exit 2."""
    args = build_arg_parser().parse_args(argv)
    try:
        if args.single:
            if not args.record_out or not args.work_dir:
                raise ConfigError("--single needs --record-out and --work-dir")
            run_single(args)
            return None
        return run_all(args)
    except RiseError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
