"""The GPU check's stages: every stage of a tiny run on the device against the same run on the CPU.

Each case runs ``python -m rise_exp``'s stage in-process (:func:`rise_exp.cli.run`) twice, with ``trainer=gpu
trainer.precision=32-true`` and with ``trainer=cpu``, each with its own cache (so the device run finetunes,
indexes and retrains itself), and compares what the stage wrote: its main array (scores, values, retrained
measurements, explained scores) by cosine, its numeric metrics by a stated tolerance. The query, valuate,
select and explain stages answer from the index the attribute stage built on the same device. Under
``GPU_CHECK_DEVICE=cpu`` (the dry run) every stage runs once, on the CPU, with nothing to compare.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

#: The tests' tiny model (one block, d = 32) on a tiny Howdy task; no logger, no progress bars.
BASE = (
    "model.layers=1",
    "model.hidden_size=32",
    "model.heads=2",
    "model.intermediate_size=64",
    "model.vocab_size=300",
    "logger=none",
    "trainer.progress_bar=false",
)
HOWDY = ("task.n_train=40", "task.n_queries=4", "finetune.epochs=1")
#: Metrics that are costs or paths, not results: never compared.
UNCOMPARED = ("seconds", "_s", "peak", "rss", "index", "bytes", "note", "search")


@dataclass
class Case:
    """One stage run: its overrides (a callable of the device's run directories, for stages that read an
    earlier case's output), the array it is compared by, and the tolerances."""

    name: str
    overrides: Callable[[dict[str, Path]], list[str]]
    array: Callable[[Path], np.ndarray] | None = None
    cosine: float = 0.999
    metric_tol: float = 1e-3  # |a - b| <= tol * max(1, |a|) for each compared metric
    #: prefixes of the compared metrics (empty: every numeric result; None: none, e.g. LDS's Spearman over three
    #: subsets, which a near-tie of two retrained losses can move by 0.5: its retrained measurements are compared)
    metric_keys: tuple[str, ...] | None = ()
    extra: dict[str, Any] = field(default_factory=dict)


def _npy(name: str) -> Callable[[Path], np.ndarray]:
    return lambda d: np.load(d / name).astype(np.float64).ravel()


def _values(d: Path) -> np.ndarray:
    files = sorted(d.glob("values*.npy"))
    return np.concatenate([np.load(f).astype(np.float64).ravel() for f in files]) if files else np.zeros(0)


def _topk_scores(d: Path) -> np.ndarray:
    lines = [json.loads(x) for x in (d / "topk.jsonl").read_text().splitlines()]
    return np.array([t["score"] for line in lines for t in line["top"]], dtype=np.float64)


def _selected(d: Path) -> np.ndarray:
    """The selection as a 0/1 vector over the pool (its cosine between two runs: the share of common rows)."""
    rows = [json.loads(x)["row"] for x in (d / "selection.jsonl").read_text().splitlines()]
    out = np.zeros(max(rows, default=-1) + 1 if rows else 0)
    out[rows] = 1.0
    return np.pad(out, (0, max(0, 1000 - out.size)))


def _explained(d: Path) -> np.ndarray:
    lines = [json.loads(x) for x in (d / "explain.jsonl").read_text().splitlines()]
    return np.array([r["explained"] for line in lines for r in line["rows"]], dtype=np.float64)


def write_task(root: Path) -> tuple[Path, Path]:
    """A 40-row labelled Howdy pool and its 4 queries as JSONL (the custom task of the index stages)."""
    from rise_exp.data.synthetic import make_howdy

    data = make_howdy(n_train=40, n_queries=4, seed=3)
    pool, queries = root / "pool.jsonl", root / "queries.jsonl"
    pool.write_text("".join(json.dumps(r.to_dict()) + "\n" for r in data.train))
    queries.write_text(
        "".join(json.dumps({k: v for k, v in r.to_dict().items() if k != "label"}) + "\n" for r in data.queries)
    )
    return pool, queries


def cases(pool: Path, queries: Path) -> list[Case]:
    """Every stage, tiny; the index stages read the attribute case's index."""
    custom = ("task=custom", f"task.train_path={pool}", f"task.queries_path={queries}", "model=tiny-pythia")
    rise = ("method.kr=32", "method.kh=16", "method.kg=16")

    def index(dirs: dict[str, Path]) -> str:
        return json.loads((dirs["attribute"] / "metrics.json").read_text())["index"]

    def serve(stage: str, *more: str) -> Callable[[dict[str, Path]], list[str]]:
        """A stage answering from the attribute case's index."""
        return lambda dirs: [f"stage={stage}", f"stage.index={index(dirs)}", f"stage.queries_path={queries}", *more]

    return [
        Case("attribute", lambda _: [*custom, *rise, "finetune.epochs=1"], _npy("scores.npy"), metric_tol=0.05,
             metric_keys=("auprc",)),  # a near-tie swapped in a top 10 moves auPRC a little
        Case("query", serve("query", "stage.k=5"), _topk_scores),
        Case("valuate", serve("valuate"), _npy("values.npy")),
        Case("select", serve("select", f"stage.pool_path={pool}", "stage.fraction=0.25"), _selected, cosine=0.8,
             metric_keys=("value_mean",)),
        Case("explain", serve("explain", "stage.k=3"), _explained),
        Case("probe", lambda _: ["stage=probe", *HOWDY, "stage.sets=[queries,queries_clean]",
                                 "stage.max_new_tokens=5"], None, metric_tol=0.25, metric_keys=("scifi_rate",)),
        Case("lds", lambda _: ["stage=lds", *HOWDY, "stage.methods=[bm25,rise]", "stage.subsets=3",
                               "stage.bootstrap=10", *rise], _values, cosine=0.999, metric_keys=None),
        Case("removal", lambda _: ["stage=removal", *HOWDY, "stage.methods=[bm25]", "stage.ks=[4]",
                                   "stage.random_draws=1"], None, metric_tol=1e-2),
        Case("closed_loop", lambda _: ["stage=closed_loop", "task=brain_rot", "task.n_train=24", "task.n_queries=4",
                                       "task.n_heldout=4", "finetune=none", "stage.selectors=[bm25,random]",
                                       "stage.budgets=[0.3]", "stage.seeds=[0]", "stage.pack.block_len=32",
                                       "stage.train.max_tokens_per_batch=256", "model.max_position=256",
                                       "data.max_length=256"], None, metric_tol=1e-2, metric_keys=("ppl",)),
    ]  # fmt: skip


def numeric_metrics(d: Path, keys: tuple[str, ...]) -> dict[str, float]:
    """The run's numeric results (not costs), restricted to ``keys`` prefixes when given."""
    m = json.loads((d / "metrics.json").read_text())
    out = {}
    for k, v in m.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or any(u in k for u in UNCOMPARED):
            continue
        if (not keys or k.startswith(keys)) and math.isfinite(v):
            out[k] = float(v)
    return out


def compare(case: Case, ref: Path, got: Path) -> tuple[str, bool]:
    """``(what was compared, within tolerance)`` for the reference and the device run directories."""
    parts, ok = [], True
    if case.array is not None:
        a, b = case.array(ref), case.array(got)
        if a.shape != b.shape:
            return f"shapes differ {a.shape} vs {b.shape}", False
        c = float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-30)) if a.size else 1.0
        ok &= c >= case.cosine
        parts.append(f"cosine {c:.6f} (>= {case.cosine})")
    if case.metric_keys is None:
        return "; ".join(parts), ok
    ma, mb = numeric_metrics(ref, case.metric_keys), numeric_metrics(got, case.metric_keys)
    worst = max((abs(ma[k] - mb.get(k, math.inf)) / max(1.0, abs(ma[k])) for k in ma), default=0.0)
    ok &= worst <= case.metric_tol
    parts.append(f"{len(ma)} metrics, worst |d| {worst:.2e} (<= {case.metric_tol:g})")
    return "; ".join(parts), ok


def run_stage(overrides: list[str], run_dir: Path) -> tuple[float, str]:
    """Run one stage in-process; ``(seconds, peak device memory)``."""
    from rise_exp.cli import run
    from rise_exp.run.config import compose

    cuda = torch.cuda.is_available() and any(o == "trainer=gpu" for o in overrides)
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    run(compose(overrides), run_dir)
    seconds = time.perf_counter() - t0
    peak = f"{torch.cuda.max_memory_allocated() / 1e9:.2f} GB" if cuda else "n/a"
    return seconds, peak


def check_stages(dev: torch.device, root: Path) -> bool:
    """Every stage on ``dev`` against the CPU (the dry run: once, on the CPU); True when all are within tolerance."""
    pool, queries = write_task(root)
    sides = {"cpu": ["trainer=cpu"]} if dev.type == "cpu" else {
        "cpu": ["trainer=cpu"], "dev": ["trainer=gpu", "trainer.precision=32-true", "trainer.devices=1"]
    }  # fmt: skip
    dirs: dict[str, dict[str, Path]] = {side: {} for side in sides}
    print(f"\n## every stage on {dev} against the CPU (tiny runs, fp32)\n")
    print(
        "| stage | seconds (CPU) | seconds (device) | peak device memory | comparison | ok |\n|---|---|---|---|---|---|"
    )
    ok = True
    for case in cases(pool, queries):
        times, peak, line, good = {}, "n/a", "dry run: ran on the CPU only", True
        try:
            for side, trainer in sides.items():
                d = root / side / case.name
                dirs[side][case.name] = d
                over = [*BASE, *case.overrides(dirs[side]), *trainer, f"paths.cache_dir={root / side / 'cache'}"]
                times[side], p = run_stage(over, d)
                peak = p if side == "dev" else peak
            if "dev" in sides:
                line, good = compare(case, dirs["cpu"][case.name], dirs["dev"][case.name])
        except Exception as exc:  # one failing stage is reported; the others still run
            line, good = f"ERROR {type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}", False
        ok &= good
        t_cpu, t_dev = (f"{times[s]:.1f}" if s in times else "-" for s in ("cpu", "dev"))
        print(f"| {case.name} | {t_cpu} | {t_dev} | {peak} | {line} | {'yes' if good else 'NO'} |")
    return ok
