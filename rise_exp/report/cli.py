"""The command line: ``python -m rise_exp.report <sweep dir> [--out DIR] [--metric M] [--pool SETTING]
[--no-wandb]``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from rise_exp.core.errors import RiseError
from rise_exp.core.results import MAIN_KEYS
from rise_exp.report.runs import REPORT_DIRNAME
from rise_exp.report.summary import DEFAULT_METRIC
from rise_exp.report.write import write_report

DESCRIPTION = (
    "Results report over Hydra run directories: a per-job table, a seed summary, Markdown/LaTeX/CSV and plots."
)


def build_parser() -> argparse.ArgumentParser:
    """The command-line options of ``python -m rise_exp.report``."""
    p = argparse.ArgumentParser(prog="python -m rise_exp.report", description=DESCRIPTION)
    p.add_argument("path", help="a Hydra multirun dir, a single run dir, or a tree of run dirs")
    p.add_argument(
        "--out", default=None, help=f"output directory (default: <path>/{REPORT_DIRNAME}, next to the runs it reports)"
    )
    p.add_argument(
        "--metric",
        default=None,
        help=f"headline metric: the first table column and the plots' y axis (default: "
        f"{DEFAULT_METRIC} if present, else the first of {', '.join(MAIN_KEYS)})".replace("%", "%%"),
    )
    p.add_argument(
        "--pool",
        action="append",
        default=[],
        metavar="SETTING",
        help="a varied setting to average over as well as the seed (repeatable), e.g. --pool finetune.seed: "
        "mean ± std over finetune seeds",
    )
    p.add_argument("--allow-mixed-tasks", action="store_true", help="report runs of several tasks together")
    p.add_argument("--no-wandb", action="store_true", help="do not log the report to an offline W&B run")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry: write the report and print the Markdown to stdout; user errors print one line (exit 2)."""
    args = build_parser().parse_args(argv)
    try:
        rep = write_report(
            args.path,
            args.out,
            metric=args.metric,
            pool=args.pool,
            allow_mixed_tasks=args.allow_mixed_tasks,
            use_wandb=not args.no_wandb,
        )
    except RiseError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(rep.markdown)
    print(f"wrote {', '.join(p.name for p in rep.files)} to {rep.out}", file=sys.stderr)
    return 0
