"""Mean ± std over RISE ensemble members (``stage.members=true``: one sketch seed each) from members.csv files.

python experiments/members_table.py multirun/real_howdy_ft_seeds [--metrics auprc@5,auprc@10,auprc@50,p@10]

Every ``members.csv`` below the directory is one run; its rows are the run's sketch seeds. Runs are pooled
by model and token rule (``data.attribute_mask_prompt``), so runs over finetune seeds give one mean ± sample
std (ddof 1) over finetune seeds x sketch seeds; a second table gives each finetune seed's mean.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
import yaml


def run_config(run_dir: Path) -> dict:
    """The run's resolved config (``config.yaml``, else Hydra's ``.hydra/config.yaml``)."""
    for path in (run_dir / "config.yaml", run_dir / ".hydra" / "config.yaml"):
        if path.is_file():
            return yaml.safe_load(path.read_text())
    raise SystemExit(f"{run_dir}: no config.yaml next to its members.csv")


def collect(root: Path) -> pd.DataFrame:
    """One row per (run, sketch seed) with the run's model, token rule, finetune seed and pool size."""
    frames = []
    for path in sorted(root.rglob("members.csv")):
        cfg = run_config(path.parent)
        table = pd.read_csv(path)
        table["model"] = cfg["model"]["name"]
        table["tokens"] = "answers" if cfg["data"]["attribute_mask_prompt"] else "all"
        trained = cfg["finetune"].get("epochs", 0) or cfg["finetune"].get("max_steps")
        table["finetune_seed"] = cfg["finetune"]["seed"] if trained else "none (as loaded)"
        table["run"] = str(path.parent)
        frames.append(table)
    if not frames:
        raise SystemExit(f"no members.csv below {root} (run the attribute stage with stage.members=true)")
    return pd.concat(frames, ignore_index=True)


def fmt(mean: float, std: float) -> str:
    return f"{mean:.3f} ± {std:.3f}" if pd.notna(std) else f"{mean:.3f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", type=Path)
    ap.add_argument("--metrics", default="auprc@5,auprc@10,auprc@50,p@10")
    args = ap.parse_args()
    metrics = args.metrics.split(",")
    df = collect(args.root)
    keys = ["model", "tokens"]
    print(f"| {' | '.join(keys)} | finetune seeds | sketch seeds | runs | {' | '.join(metrics)} |")
    print("|" + "---|" * (len(keys) + 3 + len(metrics)))
    for key, g in df.groupby(keys, sort=False):
        cells = [fmt(g[m].mean(), g[m].std(ddof=1)) for m in metrics]
        ft = ",".join(str(s) for s in sorted(g["finetune_seed"].unique()))
        sk = ",".join(str(s) for s in sorted(g["sketch_seed"].unique()))
        print(f"| {' | '.join(map(str, key))} | {ft} | {sk} | {len(g)} | {' | '.join(cells)} |")
    print()
    per = df.groupby([*keys, "finetune_seed"], sort=False)[metrics].mean().reset_index()
    print(f"| {' | '.join(keys)} | finetune seed | {' | '.join(m + ' (mean over sketch seeds)' for m in metrics)} |")
    print("|" + "---|" * (len(keys) + 1 + len(metrics)))
    for row in per.itertuples(index=False):
        values = [f"{v:.3f}" for v in row[3:]]
        print(f"| {row[0]} | {row[1]} | {row[2]} | {' | '.join(values)} |")


if __name__ == "__main__":
    main()
