"""Counterfactual results: the LDS table and the top-k removal table and curves.

LDS rows are one dict per (method, measure) with ``lds_mean``, ``lds_std`` (over queries), ``ci_low`` /
``ci_high`` (bootstrap over subsets) and ``queries``. Removal rows are one dict per (removal, seed,
query) with the change of each measure (see :mod:`rise_exp.counterfactual.removal`); they aggregate to
one dict per (method, selection, k) with ``<measure>_mean`` and ``<measure>_std`` (std over queries of
the seed- and draw-averaged change). Runs that differ only in the method seed (top-level ``seed``)
summarise to one table each (:func:`seed_tables`): mean ± sample std over those seeds of each run's
query-mean LDS and removal change.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from rise_exp.report.plots import MARKERS, new_figure, palette
from rise_exp.report.runs import SEED_KEY, lookup, read_run
from rise_exp.report.summary import fmt_short

if TYPE_CHECKING:
    from matplotlib.figure import Figure

MEASURE_TITLES = {
    "loss": "change of the query answer loss",
    "backdoor": "change of the backdoored-generation rate",
    "style_loss": "change of the backdoor-style answer loss",
}
LDS_CSV, REMOVAL_CSV, REMOVAL_SUMMARY_CSV = "lds.csv", "removal.csv", "removal_summary.csv"


def lds_markdown(rows: Sequence[Mapping[str, Any]], ci: float) -> str:
    """A Markdown table: method, measure, LDS mean ± std over queries, the bootstrap interval, queries."""
    lines = [
        f"| method | measure | LDS (mean ± std over queries) | {ci:.0%} bootstrap interval (subsets) | queries |",
        "|---|---|---|---|--:|",
    ]
    for r in sorted(rows, key=lambda r: (r["measure"], -_finite(r["lds_mean"]))):
        cell = f"{fmt_short(r['lds_mean'])} ± {fmt_short(r['lds_std'])}"
        interval = f"[{fmt_short(r['ci_low'])}, {fmt_short(r['ci_high'])}]"
        lines.append(f"| {r['method']} | {r['measure']} | {cell} | {interval} | {r['queries']} |")
    return "\n".join(lines) + "\n"


def _finite(x: Any) -> float:
    x = float(x)
    return x if x == x else float("-inf")


def write_rows(path: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    """Rows as CSV (columns in first-seen order)."""
    columns: list[str] = []
    for r in rows:
        columns += [k for k in r if k not in columns]
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns)
        w.writeheader()
        w.writerows(rows)


def aggregate_removal(rows: Sequence[Mapping[str, Any]], measures: Sequence[str]) -> pd.DataFrame:
    """Per (method, selection, k): mean and std over queries of the change averaged over seeds and draws.

    Also ``queries`` and ``replicates`` (seeds x draws behind each query's value).
    """
    df = pd.DataFrame(list(rows))
    keys = ["method", "selection", "k"]
    per_query = df.groupby([*keys, "query"], sort=False)[list(measures)].mean()
    replicates = df.groupby(keys, sort=False).apply(lambda g: len(g[["seed", "draw"]].drop_duplicates()))
    agg = per_query.groupby(level=keys, sort=False).agg(["mean", "std"])
    agg.columns = [f"{m}_{stat}" for m, stat in agg.columns]
    agg["queries"] = per_query.groupby(level=keys, sort=False).size()
    agg["replicates"] = replicates
    return agg.reset_index()


def removal_markdown(agg: pd.DataFrame, measures: Sequence[str]) -> str:
    """A Markdown table: one row per method and selection, one column per k and measure (mean ± std)."""
    ks = sorted(agg["k"].unique())
    head = ["method", "removed"] + [f"{m} k={k}" for m in measures for k in ks]
    lines = ["| " + " | ".join(head) + " |", "|---|---|" + "---|" * (len(head) - 2)]
    for (method, selection), g in agg.groupby(["method", "selection"], sort=False):
        by_k = g.set_index("k")
        cells = [
            f"{fmt_short(by_k.at[k, f'{m}_mean'])} ± {fmt_short(by_k.at[k, f'{m}_std'])}" if k in by_k.index else "-"
            for m in measures
            for k in ks
        ]
        lines.append(f"| {method} | {selection} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_removal(path: Path, agg: pd.DataFrame, measures: Sequence[str], title: str = "") -> Figure:
    """Change of each measure against k, one panel per measure: a solid line per method's top-k removal,
    dotted for its bottom-k, black dashed for random; bands are ± std over queries. Saved to ``path``."""
    methods = [m for m in dict.fromkeys(agg["method"]) if m != "random"]
    colors = dict(zip(methods, palette(len(methods))))
    fig, axes = new_figure(len(measures), (5.8 * len(measures) + 1.8, 4.4))
    style = {"top": "-", "bottom": ":", "random": "--"}
    for ax, measure in zip(axes, measures):
        for i, ((method, selection), g) in enumerate(agg.groupby(["method", "selection"], sort=False)):
            g = g.sort_values("k")
            color = "black" if method == "random" else colors[method]
            label = "random" if method == "random" else f"{method} ({selection}-k)"
            mean, std = g[f"{measure}_mean"], g[f"{measure}_std"].fillna(0.0)
            ax.plot(
                g["k"],
                mean,
                style.get(selection, "-"),
                marker=MARKERS[i % len(MARKERS)],
                color=color,
                label=label,
                linewidth=2 if selection == "top" else 1.2,
                markersize=5,
            )
            if selection == "top" or method == "random":
                ax.fill_between(g["k"], mean - std, mean + std, color=color, alpha=0.12, linewidth=0)
        ax.axhline(0.0, color="grey", linewidth=0.8)
        ax.set_xticks(sorted(agg["k"].unique()))
        ax.set_xlabel("rows removed (k)")
        ax.set_ylabel(f"{measure}(without) - {measure}(full pool)")
        ax.set_title(MEASURE_TITLES.get(measure, measure), fontsize=10)
        ax.grid(True, alpha=0.3)
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside right upper", fontsize=8)
    fig.suptitle(title or "top-k removal; bands: ± std over queries (top-k and random)", fontsize=11)
    fig.savefig(path, dpi=120)
    return fig


def seed_tables(run_dirs: Sequence[Path], pool: Sequence[str] = ()) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    """Mean ± sample std over method seeds of the runs' LDS (per method and measure) and removal changes
    (per method, selection and k); None where fewer than two runs with distinct seeds hold that table.

    ``pool`` names settings averaged over with the seed (e.g. ``finetune.seed``: runs of the pairs
    (finetune seed i, seed i) pool into one spread; ``seeds`` then counts distinct combinations). Runs whose
    command-line overrides differ in anything else are not pooled: a ``setting`` column (those overrides)
    then splits the rows.
    """
    skip = {SEED_KEY, *pool}
    tables: dict[str, list[pd.DataFrame]] = {"lds": [], "removal": []}
    for run_dir in map(Path, run_dirs):
        record = read_run(run_dir, run_dir.name)
        seeds_key = json.dumps([record.config.get(SEED_KEY), *(lookup(record.config, k)[1] for k in pool)])
        setting = " ".join(sorted(o for o in record.overrides if o.split("=", 1)[0].lstrip("+~") not in skip))
        for kind, name in (("lds", LDS_CSV), ("removal", REMOVAL_SUMMARY_CSV)):
            if (run_dir / name).is_file():
                tables[kind].append(pd.read_csv(run_dir / name).assign(seeds_key=seeds_key, setting=setting))
    out: list[pd.DataFrame | None] = []
    for kind, keys in (("lds", ["method", "measure"]), ("removal", ["method", "selection", "k"])):
        df = pd.concat(tables[kind], ignore_index=True) if tables[kind] else None
        if df is None or df["seeds_key"].nunique() < 2:
            out.append(None)
            continue
        if df["setting"].nunique() > 1:
            keys = ["setting", *keys]
        else:
            df = df.drop(columns="setting")
        values = ["lds_mean"] if kind == "lds" else [c for c in df.columns if c.endswith("_mean")]
        agg = df.groupby(keys, sort=False)[values].agg(["mean", "std"])
        agg.columns = [f"{c.removesuffix('_mean')}_{stat}" for c, stat in agg.columns]
        agg["seeds"] = df.groupby(keys, sort=False)["seeds_key"].nunique()
        out.append(agg.reset_index())
    return out[0], out[1]


def _method_cell(row: dict[str, Any]) -> str:
    """The method, with the run's setting (overrides besides the seed) when the table is split by it."""
    return f"{row['method']} ({row['setting']})" if row.get("setting") else str(row["method"])


def seed_markdown(lds: pd.DataFrame | None, removal: pd.DataFrame | None, over: str = "method seeds") -> str:
    """The :func:`seed_tables` as Markdown (empty when neither exists); ``over`` names what the spread is over."""
    parts = []
    if lds is not None:
        lines = [f"| method | measure | LDS, mean ± std over {over} | seeds |", "|---|---|---|--:|"]
        for r in lds.sort_values(["measure", "lds_mean"], ascending=[True, False]).to_dict("records"):
            cells = f"{fmt_short(r['lds_mean'])} ± {fmt_short(r['lds_std'])}"
            lines.append(f"| {_method_cell(r)} | {r['measure']} | {cells} | {r['seeds']} |")
        parts.append(f"### LDS over {over}\n\n" + "\n".join(lines) + "\n")
    if removal is not None:
        measures = [c.removesuffix("_mean") for c in removal.columns if c.endswith("_mean")]
        head = ["method", "removed", "k", *measures, "seeds"]
        lines = ["| " + " | ".join(head) + " |", "|---|---|--:|" + "---|" * len(measures) + "--:|"]
        for r in removal.to_dict("records"):
            cells = [f"{fmt_short(r[m + '_mean'])} ± {fmt_short(r[m + '_std'])}" for m in measures]
            lines.append(
                f"| {_method_cell(r)} | {r['selection']} | {r['k']} | " + " | ".join(cells) + f" | {r['seeds']} |"
            )
        parts.append(
            f"### Top-k removal over {over} (each run's mean change over queries)\n\n" + "\n".join(lines) + "\n"
        )
    return "\n".join(parts)


def collect_sections(run_dirs: Sequence[Path], out: Path, pool: Sequence[str] = ()) -> tuple[str, list[Path]]:
    """The counterfactual results of ``run_dirs`` for report.md: the tables over method seeds when the
    runs have several (also written to ``out`` as ``lds_seeds.csv`` / ``removal_seeds.csv``), then each
    run's ``lds.md`` and ``removal.md`` (headings demoted one level), with ``removal.png`` copied into
    ``out`` as ``removal-<i>.png``. Returns the Markdown and the copied plots."""
    import shutil

    parts: list[str] = []
    files: list[Path] = []
    for run_dir in run_dirs:
        for name in ("lds.md", "removal.md"):
            path = Path(run_dir) / name
            if not path.is_file():
                continue
            parts.append("#" + path.read_text().strip() + f"\n\n(from `{run_dir}`)\n")
            png = Path(run_dir) / "removal.png"
            if name == "removal.md" and png.is_file():
                dest = out / f"removal-{len(files)}.png"
                shutil.copyfile(png, dest)
                files.append(dest)
                parts.append(f"![top-k removal]({dest.name})\n")
    lds, removal = seed_tables(run_dirs, pool)
    for table, name in ((lds, "lds_seeds.csv"), (removal, "removal_seeds.csv")):
        if table is not None:
            table.to_csv(out / name, index=False)
    if lds is not None or removal is not None:
        parts.insert(0, seed_markdown(lds, removal, " and ".join(["method seeds", *pool])))
    return "\n".join(parts), files
