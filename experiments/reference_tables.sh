#!/usr/bin/env bash
# EK-FAC (kronfluence) and TrackStar (bergson) beside the embedded tables of experiments/README.md: the three
# synthetic tasks over five (finetune seed i, method seed i) pairs, i = 0-4, as the gradient baselines' rows
# (embedded_tables.sh, "baselines_ft"); then their costs in one benchmark run with the other five methods.
#   bash experiments/reference_tables.sh [sweep root]
# One thread per process: on a shared CPU torch's default (a thread per core) made these 5x slower
# (docs/reference_methods.md).
set -uo pipefail
OUT="${1:-multirun/embedded}"
PY="${PYTHON:-python}"
step() { echo "== $*"; "$@" || echo "== FAILED (exit $?): $*"; }

# pairs <sweep name> <compact.py metrics> <overrides...>: the three tasks x five pairs, then each task's report
pairs() {
  local name=$1 metrics=$2; shift 2
  for t in howdy finance_medical brain_rot; do
    for i in 0 1 2 3 4; do
      step $PY -m rise_exp -m experiment=table_$t "$@" finetune.seed=$i seed=$i logger=csv trainer.threads=1 \
          hydra.sweep.dir="$OUT/$name/$t/ft$i"
    done
    step $PY -m rise_exp.report "$OUT/$name/$t" --no-wandb
    step $PY experiments/compact.py "$OUT/$name/$t/report/runs.csv" --metrics "$metrics"
  done
}
QUALITY=auprc@5,auprc@10,auprc@50,p@10

pairs reference_ft "$QUALITY,auroc@10,index_bytes_per_row,index_seconds,query_seconds,peak_rss_mb" \
    method=ekfac,trackstar
# TrackStar with its R^-1/2 preconditioner (the pool's autocorrelation); reuses the stored gradients.
pairs reference_precond "$QUALITY" method=trackstar method.preconditioner=pool
# EK-FAC's relative influence (method.relative: each row over the square root of its self-influence); reuses the
# fitted factors.
pairs ekfac_relative "$QUALITY" method=ekfac method.relative=true

# Build time, bytes per row, peak RSS (a fresh process per method) and 100-query time of all seven methods.
OMP_NUM_THREADS=1 step $PY benchmarks/bench_methods.py --methods rise,bm25,rapidin,zo_inf,stride,ekfac,trackstar \
    --json "$OUT/bench_seven.json" trainer.threads=1
# ... and RISE, EK-FAC and TrackStar again without what the runs above left in the cache (their rows' build times).
OMP_NUM_THREADS=1 step $PY benchmarks/bench_methods.py --methods rise,ekfac,trackstar --json "$OUT/bench_refit.json" \
    trainer.threads=1 rise:method.index.reuse=false ekfac:method.reuse=false trackstar:method.reuse=false
