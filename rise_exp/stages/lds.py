"""LDS stage: retrain on random subsets of the pool and score every method's attributions against them.

Writes ``lds.md`` and ``lds.csv`` (one row per method and measure), ``subsets.npy`` (``[M, N]`` kept
rows), ``values_<measure>.npy`` (``[M, Q]`` seed-averaged measurements; with 2+ seeds also each seed's,
``values_<measure>_seed<s>.npy``), ``scores_<method>.npy`` and
``metrics.json`` (``lds/<method>`` for the first measure, ``lds/<measure>/<method>`` for every one). With two
or more retraining seeds (``stage.retrain.seeds``) the table starts with the noise ceiling (:data:`CEILING`:
the Spearman correlation over the same subsets of two seeds' measurements, mean over seed pairs and queries;
``lds/noise_ceiling`` in the metrics); with one seed it cannot be measured and the table says so.
Retrainings are cached (:mod:`rise_exp.counterfactual.retrain`), so a second run, another method or
``stage=removal`` on the full pool reuses them.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from rise_exp.config.stages import LdsStageConfig
from rise_exp.counterfactual.lds import LdsResult, lds, noise_ceiling
from rise_exp.counterfactual.retrain import measure_masks_by_seed
from rise_exp.counterfactual.subsets import random_subsets
from rise_exp.report.counterfactual import LDS_CSV, lds_markdown, write_rows
from rise_exp.run.config import RunConfig
from rise_exp.run.pipeline import make_retrainer, prepare_retrainable
from rise_exp.run.runner import publish, stage_method_scores

log = logging.getLogger(__name__)
RANDOM = "random"
#: The row of the LDS table (and the metrics' name) of the noise ceiling, present with 2+ retraining seeds.
CEILING = "noise_ceiling"


def all_scores(run: RunConfig, prep: Any, random_baseline: bool) -> dict[str, np.ndarray]:
    """Every configured method's ``[Q, N]`` scores (plus seeded Gaussian ones as ``random``)."""
    scores = stage_method_scores(run, prep.ctx, prep.task.train, prep.task.queries)
    if random_baseline:
        shape = (len(prep.task.queries), len(prep.task.train))
        scores[RANDOM] = np.random.default_rng([run.seed, 1]).standard_normal(shape)
    return scores


def ceiling_note(seeds: int) -> str:
    """The line under the LDS table that says what the noise ceiling is, or why it is missing."""
    if seeds >= 2:
        return (
            f"{CEILING}: Spearman correlation over the same subsets of the values measured after retraining with "
            f"two different seeds (mean over the {seeds * (seeds - 1) // 2} seed pair(s)): how high any method's "
            "LDS could be.\n"
        )
    return f"{CEILING}: not measured (one retraining seed; give stage.retrain.seeds two or more).\n"


def run(run: RunConfig, run_dir: Path) -> dict[str, Any]:
    """Run the LDS protocol for ``run.stage``; returns the metrics written to ``metrics.json``."""
    st = run.stage
    assert isinstance(st, LdsStageConfig)
    t0 = time.perf_counter()
    run_dir = Path(run_dir)
    prep = prepare_retrainable(run, run_dir)
    task = prep.task
    scores = all_scores(run, prep, st.random_baseline)
    retrainer = make_retrainer(run, task, run_dir)
    masks = random_subsets(len(task.train), st.subsets, st.alpha, st.subset_seed)
    log.info(
        "LDS: %d subsets of %d / %d rows x %d finetune seed(s)",
        st.subsets,
        int(masks[0].sum()),
        len(task.train),
        len(st.retrain.seeds),
    )
    values, by_seed = measure_masks_by_seed(masks, retrainer)

    rows: list[dict[str, Any]] = []
    metrics: dict[str, Any] = {}
    for i, measure in enumerate(st.retrain.measures):
        results: dict[str, LdsResult] = {}
        if len(by_seed) >= 2:  # how high any attribution could score: seed-to-seed agreement of the measurements
            per_seed = [v[measure] for v in by_seed.values()]
            results[CEILING] = noise_ceiling(per_seed, bootstrap=st.bootstrap, ci=st.ci, seed=st.subset_seed)
        for name, s in scores.items():
            results[name] = lds(
                s, masks, values[measure], measure, bootstrap=st.bootstrap, ci=st.ci, seed=st.subset_seed
            )
        for name, res in results.items():
            rows.append(
                {
                    "method": name,
                    "measure": measure,
                    "lds_mean": res.mean,
                    "lds_std": res.std,
                    "ci_low": res.ci_low,
                    "ci_high": res.ci_high,
                    "queries": res.valid_queries,
                }
            )
            for prefix in [f"lds/{measure}"] + (["lds"] if i == 0 else []):
                metrics.update(
                    {
                        f"{prefix}/{name}": res.mean,
                        f"{prefix}_std/{name}": res.std,
                        f"{prefix}_ci_low/{name}": res.ci_low,
                        f"{prefix}_ci_high/{name}": res.ci_high,
                    }
                )
    table = lds_markdown(rows, st.ci) + "\n" + ceiling_note(len(by_seed))
    head = (
        f"# LDS: {task.title}, {run.model.name}; {st.subsets} subsets of alpha = {st.alpha:g} "
        f"(subset seed {st.subset_seed}), finetune seeds {list(st.retrain.seeds)}\n\n"
    )
    (run_dir / "lds.md").write_text(head + table)
    write_rows(run_dir / LDS_CSV, rows)
    np.save(run_dir / "subsets.npy", masks)
    for measure, v in values.items():
        np.save(run_dir / f"values_{measure}.npy", v)
    seed_files = [f"values_{m}_seed{seed}.npy" for seed in by_seed for m in values] if len(by_seed) >= 2 else []
    for name in seed_files:
        measure, seed = name.removeprefix("values_").removesuffix(".npy").rsplit("_seed", 1)
        np.save(run_dir / name, by_seed[int(seed)][measure])
    for name, s in scores.items():
        np.save(run_dir / f"scores_{name}.npy", s)
    print(head + table)
    metrics.update(retrainer.stage_metrics(t0, subsets=st.subsets, subset_rows=int(masks[0].sum())))
    publish(
        run,
        run_dir,
        metrics,
        stage="lds",
        title=None,
        tables={"lds": (list(rows[0]), [list(r.values()) for r in rows])},
        files=[
            "lds.md",
            LDS_CSV,
            "subsets.npy",
            *(f"values_{m}.npy" for m in values),
            *seed_files,
            *(f"scores_{n}.npy" for n in scores),
        ],
    )
    return metrics
