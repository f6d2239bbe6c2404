"""Ensemble members (``stage.members=true``): each RISE or RapidIn run's ``members.csv`` holds one row of
metrics per sketch (or RapidGrad) seed. The report pools them per configuration into mean ± sample std
(ddof 1) over every member of every run, so runs that differ only in a seed (the method ``seed`` or
``finetune.seed``) pool into one spread over seeds x sketch seeds; a second table gives each finetune
seed's own mean ± std over its sketch seeds, which separates the finetune's share of the spread from the
sketch's.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from rise_exp.core.results import MAIN_KEYS, MEMBERS_FILE
from rise_exp.report.render import to_markdown
from rise_exp.report.runs import NAME_KEYS, SEED_KEY, lookup, read_run
from rise_exp.report.summary import fmt_mean_std, fmt_setting

SKETCH_SEED = "sketch_seed"
FINETUNE_SEED = "finetune_seed"
POOLED = (SEED_KEY, "finetune.seed")  # varied settings pooled with the sketch seeds
AS_LOADED = "none (as loaded)"  # the finetune seed of a model used as loaded (no finetune)
MEMBERS_SUMMARY_CSV = "members_summary.csv"  # next to the report's copy of every member row (MEMBERS_FILE)


def _finetune_seed(config: dict[str, Any]) -> Any:
    """The run's finetune seed, or :data:`AS_LOADED` when it trained no steps."""
    found, ft = lookup(config, "finetune")
    trained = found and isinstance(ft, dict) and (ft.get("epochs") or ft.get("max_steps"))
    return ft.get("seed", AS_LOADED) if trained else AS_LOADED


def collect_members(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (finished run, sketch seed): the run's job, group keys and varied settings, its finetune
    seed, and the member's metrics from the run's ``members.csv``. Empty when no run wrote one. A file that
    cannot be parsed, or lacks the ``sketch_seed`` column, is left out and named in ``attrs["problems"]``
    (it never stops the report of the others).

    Args:
        runs: the table of :func:`rise_exp.report.runs.collect_runs`.
    """
    settings = [s for s in runs.attrs.get("settings", []) if s not in POOLED]
    frames, problems = [], []
    for _, run in runs[runs["status"] == "ok"].iterrows():
        path = Path(run["run_dir"]) / MEMBERS_FILE
        if not path.is_file():
            continue
        try:
            table = pd.read_csv(path)
        except (OSError, ValueError) as e:
            problems.append(f"{path}: cannot read the ensemble members ({' '.join(str(e).split())})")
            continue
        if SKETCH_SEED not in table.columns or table.empty:
            problems.append(f"{path}: expected a {SKETCH_SEED} column and one row per ensemble member")
            continue
        config = read_run(path.parent, str(run["job"])).config
        head = {"job": run["job"], **{k: run[k] for k in (*NAME_KEYS, *settings)}}
        head[FINETUNE_SEED] = _finetune_seed(config)
        frames.append(pd.concat([pd.DataFrame([head] * len(table)), table], axis=1))
    out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    out.attrs.update(keys=[*NAME_KEYS, *settings], problems=problems)
    return out


def member_metrics(members: pd.DataFrame) -> list[str]:
    """The headline metrics present in ``members.csv`` (in :data:`MAIN_KEYS` order)."""
    return [m for m in MAIN_KEYS if m in members.columns and members[m].notna().any()]


def _seed_list(values: pd.Series) -> str:
    seeds = list(dict.fromkeys(values))
    numeric = sorted(s for s in seeds if isinstance(s, numbers.Real))
    return ", ".join(fmt_setting(s) for s in [*numeric, *(s for s in seeds if s not in numeric)])


def summarize_members(members: pd.DataFrame, by_finetune_seed: bool = False) -> pd.DataFrame:
    """Mean and sample std of each metric over the members of each configuration (pooling method and
    finetune seeds with the sketch seeds), or per finetune seed when ``by_finetune_seed``."""
    keys = list(members.attrs["keys"]) + ([FINETUNE_SEED] if by_finetune_seed else [])
    metrics = member_metrics(members)
    rows = []
    for values, group in members.groupby(keys, dropna=False, sort=False):
        row: dict[str, Any] = dict(zip(keys, values))
        if not by_finetune_seed:
            row["finetune seeds"] = _seed_list(group[FINETUNE_SEED])
        row["sketch seeds"] = _seed_list(group[SKETCH_SEED])
        row["runs"], row["n"] = group["job"].nunique(), len(group)
        for m in metrics:
            row[f"{m}_mean"], row[f"{m}_std"] = group[m].mean(), group[m].std(ddof=1)
        rows.append(row)
    out = pd.DataFrame(rows)
    out.attrs.update(keys=keys, metrics=metrics)
    return out


def _markdown(summary: pd.DataFrame, shown_keys: Sequence[str]) -> str:
    """The summary as a Markdown table: the shown keys, the seed lists and counts, then ``mean ± std``."""
    info = [c for c in ("finetune seeds", "sketch seeds", "runs", "n") if c in summary.columns]
    table = pd.DataFrame({c: [fmt_setting(v) for v in summary[c]] for c in (*shown_keys, *info)})
    for m in summary.attrs["metrics"]:
        table[m] = [fmt_mean_std(a, b) for a, b in zip(summary[f"{m}_mean"], summary[f"{m}_std"])]
    return to_markdown(table) + "\n"


def members_section(runs: pd.DataFrame, out: Path) -> tuple[str, list[Path]]:
    """The report's members section (Markdown) and its CSVs (``members.csv``: every member's row;
    ``members_summary.csv``: the pooled statistics); empty when no run wrote a ``members.csv``."""
    members = collect_members(runs)
    problems = "".join(f"\n- left out: {p}" for p in members.attrs["problems"])
    if members.empty:
        return ("Unreadable member tables:" + problems + "\n" if problems else ""), []
    pooled = summarize_members(members)
    per_finetune = summarize_members(members, by_finetune_seed=True)
    varies = [k for k in pooled.attrs["keys"] if k in ("model", "method") or pooled[k].nunique(dropna=False) > 1]
    text = (
        "Each run scored every member of its ensemble alone (`stage.members=true`: one sketch or RapidGrad "
        "seed per member, from one index). Mean ± sample std over every member of every run of a configuration "
        "(method and finetune seeds pooled with the sketch seeds; n = runs x members):\n\n" + _markdown(pooled, varies)
    )
    if members[FINETUNE_SEED].nunique() > 1:
        text += "\nPer finetune seed (mean ± sample std over its sketch seeds):\n\n"
        text += _markdown(per_finetune, [*varies, FINETUNE_SEED])
    if problems:
        text += "\nUnreadable member tables:" + problems + "\n"
    files = [out / MEMBERS_FILE, out / MEMBERS_SUMMARY_CSV]
    members.to_csv(files[0], index=False)
    pooled.to_csv(files[1], index=False)
    return text, files
