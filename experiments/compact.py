"""Print a compact Markdown table (chosen metrics as mean ± std) from a report's summary.csv or runs.csv.

python experiments/compact.py multirun/<sweep>/report/summary.csv --metrics auprc@5,auprc@10,auprc@50,p@10

Given a ``runs.csv`` (one row per run), it pools every run with the same kept settings, so a sweep over
``finetune.seed`` x ``seed`` gives one mean ± sample std over all its runs (``seeds`` = the number of runs).
"""

from __future__ import annotations

import argparse

import pandas as pd

KEYS = ("model", "method", "ablation", "fusion", "kr", "kh", "kg", "lam_gh", "lam_rg", "stage.mode", "mode")


def pool_runs(runs: pd.DataFrame, keys: list[str], metrics: list[str]) -> pd.DataFrame:
    """``runs.csv`` rows -> summary-like rows: ``<metric>_mean`` / ``_std`` and ``n_seeds`` per setting."""
    runs = runs[runs["status"] == "ok"] if "status" in runs else runs
    present = [m for m in metrics if m in runs]
    groups = runs.groupby(keys, sort=False, dropna=False)
    out = groups[present].agg(["mean", "std"])
    out.columns = [f"{m}_{stat}" for m, stat in out.columns]
    out["n_seeds"] = groups.size()
    return out.reset_index()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("summary")
    ap.add_argument("--metrics", default="auprc@5,auprc@10,auprc@50,auroc@10,p@10,index_bytes_per_row")
    ap.add_argument("--keys", default=",".join(KEYS), help="setting columns to keep when present")
    args = ap.parse_args()
    df = pd.read_csv(args.summary)
    if "n_seeds" not in df:  # runs.csv: pool the runs of each setting
        df = pool_runs(df, [k for k in args.keys.split(",") if k in df], args.metrics.split(","))
    keys = [k for k in args.keys.split(",") if k in df and df[k].nunique(dropna=False) > 1 or k in ("model", "method")]
    out = df[[k for k in keys if k in df]].copy()
    for m in args.metrics.split(","):
        if f"{m}_mean" in df:
            mean, std = df[f"{m}_mean"], df[f"{m}_std"].fillna(0.0)
            digits = 0 if m.startswith("index_bytes") else 3
            out[m] = [f"{a:.{digits}f} ± {b:.{digits}f}" if pd.notna(a) else "n/a" for a, b in zip(mean, std)]
    out["seeds"] = df["n_seeds"]
    print(out.to_markdown(index=False))


if __name__ == "__main__":
    main()
