"""The one method runner: build a method on a pool, answer queries or targets, account for the cost.

Every stage and the cost benchmark go through these functions, so "build, time, score or value, check
shapes, measure bytes and memory" is written once; :func:`publish` is the one "write metrics, log,
print" step at the end of a stage.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from rise_exp.config.settings import Settings
from rise_exp.core.results import PAGE_FILE
from rise_exp.data.records import Record
from rise_exp.methods.base import AttributionMethod, MethodContext
from rise_exp.methods.registry import build_method

log = logging.getLogger(__name__)


@dataclass
class BuiltMethod:
    """A method built on a pool, and what building it cost."""

    method: AttributionMethod
    pool_size: int
    build_seconds: float

    def cost(self) -> dict[str, float]:
        """Build time and storage: ``index_seconds``, ``index_bytes``, ``index_bytes_per_row``."""
        b = int(self.method.index_bytes)
        return {
            "index_seconds": self.build_seconds,
            "index_bytes": b,
            "index_bytes_per_row": float(b) / max(1, self.pool_size),
        }


def placed(ctx: MethodContext) -> contextlib.AbstractContextManager[Any]:
    """The autocast of the context's placement (``trainer.precision``), around a method's own loops."""
    return ctx.placement.autocast() if ctx.placement is not None else contextlib.nullcontext()


def build_on(cfg: Settings, ctx: MethodContext, pool: Sequence[Record]) -> BuiltMethod:
    """Instantiate the method ``cfg`` names and build it on ``pool`` (timed)."""
    method = build_method(cfg, ctx)
    t0 = time.perf_counter()
    with placed(ctx):
        method.build(pool)
    return BuiltMethod(method, len(pool), time.perf_counter() - t0)


def _checked(name: str, array: Any, shape: tuple[int, ...], what: str) -> np.ndarray:
    out = np.asarray(array, dtype=np.float32)
    if out.shape != shape:
        raise RuntimeError(f"method {name} returned {what} of shape {out.shape}, expected {shape}")
    if not np.isfinite(out).all():
        raise RuntimeError(f"method {name} returned {int((~np.isfinite(out)).sum())} non-finite {what}")
    return out


def attribution_scores(built: BuiltMethod, queries: Sequence[Record]) -> tuple[np.ndarray, float]:
    """Scores ``[Q, N]`` of every query against every built row, and the seconds they took."""
    t0 = time.perf_counter()
    with placed(built.method.ctx):
        scores = built.method.score(queries)
    seconds = time.perf_counter() - t0
    return _checked(built.method.name, scores, (len(queries), built.pool_size), "scores"), seconds


@dataclass
class Ranked:
    """Each query's best and worst rows: ``top`` best first (ties: smaller row first), ``bottom`` worst first
    (ties: larger row first), each ``(scores float32 [Q, k], rows int64 [Q, k])``."""

    top: tuple[np.ndarray, np.ndarray]
    bottom: tuple[np.ndarray, np.ndarray]


def rank_dense(scores: np.ndarray, k_top: int, k_bottom: int) -> Ranked:
    """:class:`Ranked` from a dense ``[Q, N]`` score matrix (a stable descending sort)."""
    order = np.argsort(-scores, axis=1, kind="stable")
    top = order[:, :k_top]
    bottom = order[:, ::-1][:, :k_bottom]
    return Ranked(
        (np.take_along_axis(scores, top, axis=1), top.astype(np.int64)),
        (np.take_along_axis(scores, bottom, axis=1), bottom.astype(np.int64)),
    )


def _stack(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def attribution_ranked(
    built: BuiltMethod,
    queries: Sequence[Record],
    k_top: int,
    k_bottom: int,
    *,
    query_chunk: int = 64,
    search: Any = None,
) -> tuple[Ranked, float]:
    """The ``k_top`` best and ``k_bottom`` worst rows of every query, without a ``[Q, N]`` score matrix.

    A method with an index (``topk``) streams its blocks; any other method is scored ``query_chunk``
    queries at a time (memory ``O(query_chunk * N)``). ``search`` (the ``search.*`` settings) picks an
    exact, compressed or approximate backend for indexed methods. Returns the rows and the seconds they took.
    """
    method, n = built.method, built.pool_size
    k_top, k_bottom = min(k_top, n), min(k_bottom, n)
    t0 = time.perf_counter()
    if hasattr(method, "top_bottom") and getattr(method, "index", None) is not None:
        with placed(method.ctx):
            ranked = Ranked(*method.top_bottom(queries, k_top, k_bottom, search=search))
    else:
        tops, bottoms = [], []
        for i in range(0, len(queries), query_chunk):
            chunk = queries[i : i + query_chunk]
            with placed(method.ctx):
                scored = method.score(chunk)
            part = rank_dense(_checked(method.name, scored, (len(chunk), n), "scores"), k_top, k_bottom)
            tops.append(part.top)
            bottoms.append(part.bottom)
        ranked = Ranked(_stack(tops), _stack(bottoms))
    seconds = time.perf_counter() - t0
    for what, (s, r) in (("top scores", ranked.top), ("bottom scores", ranked.bottom)):
        _checked(method.name, s, (len(queries), r.shape[1]), what)
    return ranked, seconds


def valuation_values(built: BuiltMethod, targets: Sequence[Record], mode: str | None) -> tuple[np.ndarray, float]:
    """Value ``[N]`` of every built row against ``targets``, and the seconds it took.

    ``mode`` None means the method's own ``valuation`` setting (else ``mean``).
    """
    mode = mode or getattr(built.method.cfg, "valuation", "mean")
    t0 = time.perf_counter()
    with placed(built.method.ctx):
        values = built.method.value(targets, mode=mode)
    seconds = time.perf_counter() - t0
    return _checked(built.method.name, values, (built.pool_size,), "values"), seconds


def method_scores(
    methods: Mapping[str, Settings],
    ctx: MethodContext,
    pool: Sequence[Record],
    queries: Sequence[Record],
    cache_dir: Path | None = None,
) -> dict[str, np.ndarray]:
    """``{name: [Q, N] scores}`` of several methods on the same pool, queries and context (the attribute
    stage's protocol; each method works in ``<work_dir>/<name>``).

    With ``cache_dir`` the scores are stored as ``<cache_dir>/<name>-<key>.npy``, the key hashing the method
    settings, the model identity, the exact pool and queries and the token rule, and reused by later runs.
    """
    from rise_exp.core.hashing import config_hash
    from rise_exp.data.records import records_hash

    out: dict[str, np.ndarray] = {}
    for name, cfg in methods.items():
        path = None
        if cache_dir is not None:
            key = config_hash(
                {
                    "method": cfg.to_dict(),
                    "model": ctx.model_id,
                    "pool": records_hash(pool),
                    "queries": records_hash(queries),
                    "rule": [ctx.mask_prompt, ctx.max_length, ctx.seed],
                },
                n=16,
            )
            path = Path(cache_dir) / f"{name}-{key}.npy"
            if path.is_file():
                out[name] = np.load(path)
                log.info("reusing cached %s scores %s", name, path)
                continue
        built = build_on(cfg, replace(ctx, work_dir=Path(ctx.work_dir) / name), pool)
        out[name], _ = attribution_scores(built, queries)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.stem + ".tmp.npy")
            np.save(tmp, out[name])
            tmp.replace(path)
    return out


def stage_method_scores(
    run: Any, ctx: MethodContext, pool: Sequence[Record], queries: Sequence[Record]
) -> dict[str, np.ndarray]:
    """:func:`method_scores` of the methods a stage lists (``stage.methods``, ``stage.method_overrides``),
    cached in ``<paths.cache_dir>/scores`` (the lds and removal stages score the same models)."""
    from rise_exp.run.stage_methods import stage_methods

    methods = {m.name: m.settings(run) for m in stage_methods(run)}  # as admission estimated them
    return method_scores(methods, ctx, pool, queries, Path(run.paths.cache_dir).resolve() / "scores")


def publish(
    run: Any,
    run_dir: Path,
    metrics: Mapping[str, Any],
    *,
    stage: str,
    title: str | None,
    files: Sequence[str] = (),
    tables: Mapping[str, tuple[list[str], list[list[Any]]]] | None = None,
    headline: Sequence[str] | None = None,
    images: Mapping[str, Path] | None = None,
) -> None:
    """End a stage: ``metrics.json``, the configured loggers, the console table and the files written.

    Args:
        run: The :class:`~rise_exp.run.config.RunConfig`.
        run_dir: The run directory.
        metrics: Flat metrics (headline numbers and housekeeping); ``peak_rss_mb`` is added: the peak
            resident memory of this run (sampled), or of the process when no run sampler is active.
        stage: Logger run name.
        title: Title of the console table of metrics (None: the stage printed its own table).
        files: Other files the stage wrote into ``run_dir`` (listed at the end).
        tables: ``{key: (columns, rows)}`` logged as tables by loggers that support them (W&B).
        headline: The metrics the console table shows first (default: the protocol's main keys).
        images: ``{key: PNG path}`` logged as images by loggers that support them (W&B).
    """
    from rise_exp.core.results import print_files, print_metrics, write_json
    from rise_exp.core.rss import PeakRss, process_peak_rss_mb
    from rise_exp.run.loggers import close_loggers, log_summary, make_loggers

    sampler = PeakRss.current()
    metrics = {**metrics, "peak_rss_mb": sampler.peak_mb if sampler else process_peak_rss_mb()}
    write_json(run_dir / "metrics.json", metrics)
    loggers = make_loggers(run.logger, run_dir, name=stage, group=run.task.name, config=run.raw)
    log_summary(loggers, metrics)
    for key, (columns, data) in (tables or {}).items():
        for lg in loggers:
            if hasattr(lg, "log_table"):
                lg.log_table(key=key, columns=columns, data=data)
    for key, path in (images or {}).items():
        for lg in loggers:
            if hasattr(lg, "log_image"):
                lg.log_image(key=key, images=[str(path)])
    close_loggers(loggers)
    if title is not None:
        print_metrics(metrics, title=title, headline=headline)
    page = [PAGE_FILE] if write_page(run_dir) else []
    print_files(run_dir, ["metrics.json", *files, *page], index=metrics.get("index"))


def write_page(run_dir: Path) -> bool:
    """The run's results page (``report.html``, report/page.py) from the files it wrote; a page that cannot be
    written is logged with its traceback and does not fail the finished run."""
    from rise_exp.report.page import write_run_page

    try:
        write_run_page(run_dir)
    except Exception:  # noqa: BLE001 - the page is a view of results already on disk
        log.exception("could not write %s in %s", PAGE_FILE, run_dir)
        return False
    return True
