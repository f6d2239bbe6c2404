"""Chance level of the retrospective protocol's metrics: random rankings of a pool with the given positives.

    python experiments/chance_level.py --rows 300 --positives 26 --queries 100   # the real Howdy subset

auPRC@K is computed on the top-K and bottom-K rows, so its chance level is well above the positive rate
(P@K's is the rate). Prints mean ± std over ``--draws`` runs of ``--queries`` random queries (one generator,
seeded with ``--seed``).
"""

from __future__ import annotations

import argparse

import numpy as np

from rise_exp.retrieval.metrics import DEFAULT_KS, chance_retrieval_metrics


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, required=True, help="pool size N")
    p.add_argument("--positives", type=int, required=True, help="positive rows among them")
    p.add_argument("--queries", type=int, required=True, help="queries per run")
    p.add_argument("--ks", type=int, nargs="+", default=list(DEFAULT_KS))
    p.add_argument("--draws", type=int, default=20, help="random runs averaged")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    labels = np.zeros(args.rows, dtype=int)
    labels[: args.positives] = 1
    chance = chance_retrieval_metrics(labels, args.queries, args.ks, draws=args.draws, seed=args.seed)
    print(f"chance over {args.draws} draws of {args.queries} random queries, {args.positives} / {args.rows} positive")
    print("| K | auPRC@K | auROC@K | P@K |\n|--:|---|---|---|")
    for k in args.ks:
        cells = [f"{chance[f'{m}@{k}']:.3f} ± {chance[f'{m}@{k}_std']:.3f}" for m in ("auprc", "auroc", "p")]
        print(f"| {k} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
