"""Print a compact Markdown table (chosen metrics as mean ± std) from a report's summary.csv.

python experiments/compact.py multirun/<sweep>/report/summary.csv --metrics auprc@5,auprc@10,auprc@50,p@10
"""

from __future__ import annotations

import argparse

import pandas as pd

KEYS = ("model", "method", "ablation", "fusion", "kr", "kh", "kg", "lam_gh", "lam_rg", "stage.mode", "mode")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("summary")
    ap.add_argument("--metrics", default="auprc@5,auprc@10,auprc@50,auroc@10,p@10,index_bytes_per_row")
    ap.add_argument("--keys", default=",".join(KEYS), help="setting columns to keep when present")
    args = ap.parse_args()
    df = pd.read_csv(args.summary)
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
