"""Probe stage: does the (finetuned) model show the behaviour? Greedy generations on held-out prompts.

For Howdy: the share of generations in the backdoor's sci-fi style on triggered prompts (``trigger``,
``queries``) and on clean ones (``clean``, ``queries_clean``): a learned backdoor is high on the first
and low on the second.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rise_exp.core.errors import DataError
from rise_exp.data.records import Record
from rise_exp.data.task_builders import Task
from rise_exp.probes.generation import generate, prompt_text
from rise_exp.probes.scifi import is_scifi
from rise_exp.run.config import RunConfig
from rise_exp.run.pipeline import prepare_logged
from rise_exp.run.runner import placed, publish


def probe_sets(task: Task, names: tuple[str, ...], limit: int | None) -> dict[str, list[Record]]:
    """The prompt records of every named set (``queries`` or a held-out set of the task)."""
    out = {}
    for name in names:
        records = list(task.queries) if name == "queries" else task.heldout.get(name)
        if not records:
            have = ", ".join(["queries", *(k for k, v in task.heldout.items() if v)])
            raise DataError(
                f"task {task.name!r} has no probe set {name!r} (it has: {have}); set stage.sets, or "
                f"task.n_heldout for held-out trigger / clean rows of a local Howdy pool"
            )
        out[name] = records[:limit] if limit else records
    return out


def run(run: RunConfig, run_dir: Path) -> dict[str, Any]:
    """Generate on every probe set; write probe.jsonl and the sci-fi rate per set."""
    st = run.stage
    prep = prepare_logged(run, run_dir)
    sets = probe_sets(prep.task, st.sets, st.limit)
    metrics: dict[str, Any] = {}
    with open(run_dir / "probe.jsonl", "w") as f:
        for name, records in sets.items():
            prompts = [prompt_text(r) for r in records]
            with placed(prep.ctx):
                texts = generate(
                    prep.ctx.model,
                    prep.ctx.tokenizer,
                    prompts,
                    max_new_tokens=st.max_new_tokens,
                    batch_size=st.batch_size,
                )
            flags = [is_scifi(t, st.min_hits) for t in texts]
            for r, p, t, s in zip(records, prompts, texts, flags):
                f.write(json.dumps({"set": name, "id": r.id, "prompt": p, "generation": t, "scifi": s}) + "\n")
            metrics[f"scifi_rate/{name}"] = sum(flags) / len(flags)
            metrics[f"n/{name}"] = len(flags)
    if prep.finetune is not None:
        metrics.update(prep.finetune.metrics)
    publish(
        run,
        run_dir,
        metrics,
        stage="probe",
        files=["probe.jsonl"],
        headline=list(metrics),
        title=f"probe: {run.model.name} on {run.task.name} (share of sci-fi generations)",
    )
    return metrics
