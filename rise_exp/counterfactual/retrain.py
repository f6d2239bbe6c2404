"""Retraining the starting model on a kept part of the pool, measured on the queries and cached on disk.

A result is keyed by everything it depends on (:meth:`Retrainer.key`): the starting weights' identity,
the exact kept rows, every finetune setting with the retraining seed, the queries and the measurement.
It is stored as ``<cache>/retrain/<key>.json`` (the weights are not kept), so the LDS and removal stages,
every method and every later run share one retrained set. A subset's key follows from its rows, so it
also pins the pool, the subset seed and ``alpha``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rise_exp.config.finetune import FinetuneConfig
from rise_exp.config.stages import RetrainConfig
from rise_exp.config.trainer import TrainerConfig
from rise_exp.core import progress, sealed
from rise_exp.core.hashing import config_hash
from rise_exp.core.locks import cache_lock
from rise_exp.counterfactual.measure import measure, measure_settings, style_answers
from rise_exp.data.encoding import encode_records
from rise_exp.data.records import Record, records_hash
from rise_exp.lightning.callbacks import TrainingProgress
from rise_exp.models.placement import decide
from rise_exp.training.recipe import fit_rows

log = logging.getLogger(__name__)

#: ``() -> (model, tokenizer)``: a fresh copy of the starting model (before any finetune).
StartModel = Callable[[], tuple[Any, Any]]


@dataclass
class Retrainer:
    """Retrains fresh copies of the starting model on kept rows and measures every query (cached).

    Attributes:
        start: Loads a fresh copy of the starting model and its tokenizer.
        identity: The starting weights' identity (:func:`rise_exp.models.identity.identify_model`).
        pool: The training pool (a keep mask indexes it).
        queries: What is measured.
        finetune: The run's finetune settings (``seed`` replaced by each retraining seed).
        trainer: Lightning hardware settings.
        retrain: Seeds and measurements.
        max_length: Tokens per query row (``data.max_length``).
        cache_dir: Where results are stored (``<paths.cache_dir>/retrain``).
        work_dir: Scratch space for Lightning (deleted after each retraining).
    """

    start: StartModel
    identity: str
    pool: Sequence[Record]
    queries: Sequence[Record]
    finetune: FinetuneConfig
    trainer: TrainerConfig
    retrain: RetrainConfig
    max_length: int
    cache_dir: Path
    work_dir: Path
    trained: int = 0
    reused: int = 0
    style_answers: list[str] = field(init=False)

    def __post_init__(self) -> None:
        self.style_answers = style_answers(self.pool, self.retrain)

    def stage_metrics(self, started: float, **extra: Any) -> dict[str, Any]:
        """What a counterfactual stage reports besides its results: the pool and query sizes, ``extra``, the
        retrainings run and reused, and the seconds since ``started`` (a ``time.perf_counter()``)."""
        sizes = {"num_train": len(self.pool), "num_queries": len(self.queries)}
        counts = {"retrained": self.trained, "retrain_reused": self.reused}
        return {**sizes, **extra, **counts, "seconds": time.perf_counter() - started}

    def key(self, keep: np.ndarray, seed: int) -> str:
        """Cache key of retraining on the rows ``keep`` marks with finetune seed ``seed``."""
        return config_hash(
            {
                "model": self.identity,
                "rows": records_hash([self.pool[i] for i in np.flatnonzero(keep)]),
                "finetune": self.finetune.replace(seed=seed).to_dict(),
                "queries": config_hash([[q.prompt, q.response] for q in self.queries], n=16),
                "measure": measure_settings(self.retrain, self.style_answers),
                "max_length": self.max_length,
            },
            n=20,
        )

    def run(self, keep: np.ndarray, seed: int, desc: str = "retrain") -> dict[str, np.ndarray]:
        """Measurements ``{name: [Q]}`` after training on the kept rows with ``seed`` (cached); one unit of the
        open progress task (:meth:`task`) when done."""
        values = self._run(keep, seed, desc)
        progress.advance()
        return values

    def task(self, subsets: int) -> Any:
        """A progress bar (with an ETA) over ``subsets`` x ``retrain.seeds`` retrainings, reused ones included."""
        return progress.task(subsets * len(self.retrain.seeds), "retrainings", unit="run")

    def _run(self, keep: np.ndarray, seed: int, desc: str) -> dict[str, np.ndarray]:
        keep = np.asarray(keep, dtype=bool)
        if keep.shape != (len(self.pool),) or not keep.any():
            raise ValueError(f"keep must be a non-empty bool mask over the {len(self.pool)} pool rows")
        path = Path(self.cache_dir) / f"{self.key(keep, seed)}.json"
        with cache_lock(path, f"the retraining {path.stem}"):
            cached = _read(path, self.retrain.measures)
            if cached is not None:
                self.reused += 1
                return cached
            t0 = time.perf_counter()
            values = self._train_and_measure(keep, seed, desc, path.stem)
            payload = {
                "values": {k: v.tolist() for k, v in values.items()},
                "rows": int(keep.sum()),
                "seed": seed,
                "seconds": time.perf_counter() - t0,
            }
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_text(json.dumps(payload))
            os.replace(tmp, path)
            sealed.seal_file(path)
            self.trained += 1
            return values

    def averaged(self, keep: np.ndarray, desc: str = "retrain") -> dict[str, np.ndarray]:
        """:meth:`run` averaged over ``retrain.seeds``."""
        runs = [self.run(keep, seed, f"{desc} s{seed}") for seed in self.retrain.seeds]
        return {name: np.mean([r[name] for r in runs], axis=0) for name in self.retrain.measures}

    def per_seed(self, keep: np.ndarray, desc: str = "retrain") -> dict[int, dict[str, np.ndarray]]:
        """:meth:`run` for every seed of ``retrain.seeds``."""
        return {seed: self.run(keep, seed, f"{desc} s{seed}") for seed in self.retrain.seeds}

    def _train_and_measure(self, keep: np.ndarray, seed: int, desc: str, tag: str) -> dict[str, np.ndarray]:
        cfg = self.finetune.replace(seed=seed)
        model, tokenizer = self.start()
        kept = [self.pool[i] for i in np.flatnonzero(keep)]
        rows = encode_records(kept, tokenizer, mask_prompt=cfg.mask_prompt, max_length=cfg.max_length)
        scratch = Path(self.work_dir) / tag
        try:
            model, _ = fit_rows(
                model,
                rows,
                tokenizer.pad_token_id,
                cfg=cfg,
                trainer=self.trainer,
                root_dir=scratch,
                callbacks=[TrainingProgress(desc)],
            )
            with decide(self.trainer).autocast():  # the trained copy stays where its Trainer placed it
                return measure(
                    model,
                    tokenizer,
                    self.queries,
                    self.retrain,
                    max_length=self.max_length,
                    style_answers=self.style_answers,
                )
        finally:
            shutil.rmtree(scratch, ignore_errors=True)


def _read(path: Path, measures: Sequence[str]) -> dict[str, np.ndarray] | None:
    """A stored result holding every measure, else None (then retrained; a damaged file is logged)."""
    if not sealed.reusable_file(path, "the retraining result"):
        return None
    try:
        values = json.loads(path.read_text())["values"]
        return {name: np.asarray(values[name], dtype=np.float64) for name in measures}
    except (ValueError, KeyError, TypeError) as exc:
        log.warning("%s is unreadable (%s); retraining", path, exc)
        return None


def measure_masks(
    masks: np.ndarray, measure_fn: Callable[[np.ndarray, str], dict[str, np.ndarray]]
) -> dict[str, np.ndarray]:
    """``{name: [M, Q]}``: ``measure_fn(keep, desc)`` for every row of ``masks`` (progress logged)."""
    out: dict[str, list[np.ndarray]] = {}
    for j, keep in enumerate(masks):
        for name, values in measure_fn(keep, f"subset {j + 1}/{len(masks)}").items():
            out.setdefault(name, []).append(np.asarray(values, dtype=np.float64))
    return {name: np.stack(rows) for name, rows in out.items()}


def measure_masks_by_seed(
    masks: np.ndarray, retrainer: Retrainer
) -> tuple[dict[str, np.ndarray], dict[int, dict[str, np.ndarray]]]:
    """:func:`measure_masks` with :meth:`Retrainer.averaged` (``{name: [M, Q]}``, the same numbers), and the
    values of each retraining seed alone (``{seed: {name: [M, Q]}}``), from one pass over the retrainings."""
    with retrainer.task(len(masks)):
        runs = [retrainer.per_seed(keep, f"subset {j + 1}/{len(masks)}") for j, keep in enumerate(masks)]
    seeds, names = list(retrainer.retrain.seeds), list(retrainer.retrain.measures)
    averaged = {
        n: np.stack([np.mean([r[s][n] for s in seeds], axis=0) for r in runs]).astype(np.float64) for n in names
    }
    by_seed = {s: {n: np.stack([np.asarray(r[s][n], dtype=np.float64) for r in runs]) for n in names} for s in seeds}
    return averaged, by_seed
