#!/usr/bin/env bash
# The embedded-model tables quoted in docs/results.md and experiments/README.md, rerun from scratch (synthetic
# tasks, no network; RISE over sketch seeds 0-4, the costly gradient baselines with seed 0, then everything
# again over five finetune seeds: RISE x sketch seeds 0-4, the baselines as (finetune seed i, seed i) pairs).
#   bash experiments/embedded_tables.sh [sweep root] [released Howdy dir, optional]
# Each block is one Hydra sweep followed by its report (<sweep>/report/summary.csv).
set -uo pipefail
OUT="${1:-multirun/embedded}"
HOWDY="${2:-}"
PY="${PYTHON:-python}"
step() { echo "== $*"; "$@" || echo "== FAILED (exit $?): $*"; }
report() { step $PY -m rise_exp.report "$1" --no-wandb; }

# docs/results.md "Results on the embedded default": the default run over five sketch seeds, and BM25.
step $PY -m rise_exp -m seed=0,1,2,3,4 method=rise logger=csv hydra.sweep.dir="$OUT/default/rise"
step $PY -m rise_exp -m method=bm25 logger=csv hydra.sweep.dir="$OUT/default/bm25"
report "$OUT/default"
# The same over finetune seeds too: 5 finetunes (each cached once made) x 5 sketch seeds; BM25 per finetune seed.
step $PY -m rise_exp -m finetune.seed=0,1,2,3,4 seed=0,1,2,3,4 method=rise logger=csv trainer.threads=1 \
    hydra.sweep.dir="$OUT/default_ft/rise"
step $PY -m rise_exp -m finetune.seed=0,1,2,3,4 method=bm25 logger=csv trainer.threads=1 hydra.sweep.dir="$OUT/default_ft/bm25"
report "$OUT/default_ft"

# experiments/README "Attribution on Howdy": RISE, BM25, ZO-Inf over seeds 0-4; RapidIn and STRIDE seed 0.
step $PY -m rise_exp -m experiment=table_howdy method=rise,bm25,zo_inf logger=csv hydra.sweep.dir="$OUT/howdy/a"
step $PY -m rise_exp -m experiment=table_howdy method=rapidin,stride seed=0 logger=csv hydra.sweep.dir="$OUT/howdy/b"
report "$OUT/howdy"

# experiments/README "Finetuning length": RISE over sketch seeds 0-4 and BM25 at 4, 6, 8 and 16 finetune epochs.
step $PY -m rise_exp -m finetune.epochs=4,6,8,16 seed=0,1,2,3,4 method=rise logger=csv trainer.threads=1 \
    hydra.sweep.dir="$OUT/epochs/rise"
step $PY -m rise_exp -m finetune.epochs=4,6,8,16 method=bm25 logger=csv hydra.sweep.dir="$OUT/epochs/bm25"
report "$OUT/epochs"
step $PY -m rise_exp -m finetune.epochs=4,8,16 finetune.seed=1,2,3,4 seed=0,1,2,3,4 method=rise logger=csv \
    trainer.threads=1 hydra.sweep.dir="$OUT/epochs_ft/rise"
report "$OUT/epochs_ft"

# experiments/README "Numerics": the default without the norm floor, over the same 25 finetune x sketch seeds,
# and sketch seed 42 with and without it.
step $PY -m rise_exp -m method.norm_eps=0 finetune.seed=0,1,2,3,4 seed=0,1,2,3,4 method=rise logger=csv \
    trainer.threads=1 hydra.sweep.dir="$OUT/norm_eps0/rise"
report "$OUT/norm_eps0"
step $PY -m rise_exp -m method.norm_eps=1e-8,0 seed=42 method=rise logger=csv trainer.threads=1 \
    hydra.sweep.dir="$OUT/seed42/rise"
report "$OUT/seed42"

# docs/results.md / experiments/README "Fidelity": one run per diagnostic (memory: about 12 min here, the rest 20 s-3 min).
for d in sketch_fidelity head_vs_full layer_energy hidden_retrieval sparse_support memory; do
  step $PY -m rise_exp stage=diagnose diagnostic=$d logger=csv trainer.threads=1 hydra.run.dir="$OUT/fidelity/$d"
done

# docs/results.md "Closed loop": five training seeds, the paper's learning rate and one suited to the tiny model.
step $PY -m rise_exp stage=closed_loop task=brain_rot 'stage.seeds=[0,1,2,3,4]' logger=csv trainer.threads=1 \
    hydra.run.dir="$OUT/closed_loop/lr1e-5"
step $PY -m rise_exp stage=closed_loop task=brain_rot 'stage.seeds=[0,1,2,3,4]' stage.train.lr=1e-3 logger=csv \
    trainer.threads=1 hydra.run.dir="$OUT/closed_loop/lr1e-3"

# Brain Rot and Finance-Medical: every method, RISE over seeds 0-4, the others seed 0.
for t in brain_rot finance_medical; do
  step $PY -m rise_exp -m experiment=table_$t method=rise finetune.seed=0,1,2,3,4 seed=0,1,2,3,4 logger=csv \
      trainer.threads=1 hydra.sweep.dir="$OUT/${t}_ft"
  report "$OUT/${t}_ft"   # pooled over the 25 runs: python experiments/compact.py "$OUT/${t}_ft/report/runs.csv"
  step $PY -m rise_exp -m experiment=table_$t method=rise seed=0,1,2,3,4 logger=csv hydra.sweep.dir="$OUT/$t/a"
  step $PY -m rise_exp -m experiment=table_$t method=bm25,rapidin,zo_inf,stride seed=0 logger=csv \
      hydra.sweep.dir="$OUT/$t/b"
  report "$OUT/$t"
done

# The gradient baselines over five (finetune seed i, method seed i) pairs, per task (pooled: compact.py).
for t in howdy finance_medical brain_rot; do
  for i in 0 1 2 3 4; do
    step $PY -m rise_exp -m experiment=table_$t method=rapidin,stride,zo_inf finetune.seed=$i seed=$i logger=csv \
        trainer.threads=1 hydra.sweep.dir="$OUT/baselines_ft/$t/ft$i"
  done
  report "$OUT/baselines_ft/$t"
done

# The sketch ablation over finetune seeds x sketch seeds (pooled per variant: compact.py --keys ablation).
step $PY -m rise_exp -m experiment=ablate_sketch_dims finetune.seed=0,1,2,3,4 logger=csv trainer.threads=1 \
    hydra.sweep.dir="$OUT/ablate_ft"
report "$OUT/ablate_ft"

# The old residual rule (method.residual=naive) against the default, finetune seeds x sketch seeds.
step $PY -m rise_exp -m method=rise method.residual=naive method.norm_eps=0,1e-8 finetune.seed=0,1,2,3,4 \
    seed=0,1,2,3,4 logger=csv trainer.threads=1 hydra.sweep.dir="$OUT/naive/rise"
report "$OUT/naive"

# tiny-olmo and prospective valuation over finetune seeds x sketch seeds (pooled: compact.py on runs.csv).
step $PY -m rise_exp -m experiment=table_models model=tiny-olmo method=rise finetune.seed=0,1,2,3,4 logger=csv \
    trainer.threads=1 hydra.sweep.dir="$OUT/models_ft"
report "$OUT/models_ft"
step $PY -m rise_exp -m experiment=table_valuation method=rise finetune.seed=0,1,2,3,4 seed=0,1,2,3,4 logger=csv \
    trainer.threads=1 hydra.sweep.dir="$OUT/valuation_ft"
report "$OUT/valuation_ft"
# Valuation by the gradient baselines over five (finetune seed i, method seed i) pairs, both modes, pooled.
for i in 0 1 2 3 4; do
  step $PY -m rise_exp -m experiment=table_valuation method=rapidin,stride,zo_inf stage.mode=mean,rrf \
      finetune.seed=$i seed=$i logger=csv trainer.threads=1 hydra.sweep.dir="$OUT/valuation_baselines_ft/ft$i"
done
step $PY -m rise_exp.report "$OUT/valuation_baselines_ft" --pool finetune.seed --no-wandb

# Chance levels of the retrospective tables (random rankings): synthetic Howdy; Brain Rot and Finance-Medical.
step $PY experiments/chance_level.py --rows 500 --positives 45 --queries 20
step $PY experiments/chance_level.py --rows 500 --positives 250 --queries 20

# The released Howdy pool on the embedded model (needs the release's files).
if [ -n "$HOWDY" ]; then
  step $PY -m rise_exp -m task.source=local task.train_path="$HOWDY/train.jsonl" \
      task.queries_path="$HOWDY/queries.jsonl" method=rise seed=0,1,2,3,4 logger=csv trainer.threads=1 \
      hydra.sweep.dir="$OUT/released/rise"
  step $PY -m rise_exp -m task.source=local task.train_path="$HOWDY/train.jsonl" \
      task.queries_path="$HOWDY/queries.jsonl" method=bm25 logger=csv hydra.sweep.dir="$OUT/released/bm25"
  report "$OUT/released"
  step $PY -m rise_exp -m task.source=local task.train_path="$HOWDY/train.jsonl" \
      task.queries_path="$HOWDY/queries.jsonl" method=rise method.norm_eps=0 seed=0,1,2,3,4 logger=csv \
      trainer.threads=1 hydra.sweep.dir="$OUT/released_ne0/rise"
  report "$OUT/released_ne0"
  step $PY -m rise_exp -m task.source=local task.train_path="$HOWDY/train.jsonl" \
      task.queries_path="$HOWDY/queries.jsonl" method=rise method.residual=naive method.norm_eps=0,1e-8 \
      seed=0,1,2,3,4 logger=csv trainer.threads=1 hydra.sweep.dir="$OUT/released_naive/rise"
  report "$OUT/released_naive"
  for i in 0 1 2 3 4; do   # over finetune seeds: five sketch seeds per finetune from one ensemble index
    step $PY -m rise_exp -m task.source=local task.train_path="$HOWDY/train.jsonl" \
        task.queries_path="$HOWDY/queries.jsonl" method=rise method.ensemble=5 stage.members=true seed=0 \
        finetune.seed=$i logger=csv trainer.threads=1 hydra.sweep.dir="$OUT/released_ft/ft$i"
  done
  step $PY -m rise_exp.report "$OUT/released_ft" --pool finetune.seed --no-wandb
  step $PY experiments/chance_level.py --rows 4999 --positives 438 --queries 100
fi
