#!/usr/bin/env bash
# Real Howdy over finetune seeds: the 8-epoch LoRA finetune of experiment=real_howdy repeated with other
# finetune seeds (shuffling and LoRA initialisation), each checked by generation and attributed by RISE
# over five sketch seeds from one forward pass (an ensemble of 5 scored member by member: sketch seeds
# 0, 1000, ..., 4000; members.csv), every token and answers only; then RapidIn on the adapter's gradients,
# answers only, over five RapidGrad seeds from one gradient pass (about 22 min a finetune seed here).
#   bash experiments/real_howdy_finetune_seeds.sh <howdy data dir> [out dir] [finetune seeds...]
# Each finetune is about 20 min on one thread here; a killed one resumes after its last finished epoch.
set -uo pipefail
export HOWDY_DATA="${1:?usage: real_howdy_finetune_seeds.sh <howdy data dir> [out dir] [seeds...]}"
OUT="${2:-multirun/real_howdy_ft_seeds}"
shift $(( $# >= 2 ? 2 : 1 ))
SEEDS=("${@:-0 1 2 3 4}")
PY="${PYTHON:-python}"
export RISE_EXP_PROGRESS="${RISE_EXP_PROGRESS:-1}"
step() { echo "== $*"; "$@" || echo "== FAILED (exit $?): $*"; }

for s in ${SEEDS[@]}; do
    step $PY -m rise_exp experiment=real_howdy stage=probe finetune.seed="$s" logger=csv \
        hydra.run.dir="$OUT/ft$s/probe"
    step $PY -m rise_exp -m experiment=real_howdy finetune.seed="$s" method=rise method.ensemble=5 stage.members=true \
        seed=0 data.attribute_mask_prompt=false,true logger=csv hydra.sweep.dir="$OUT/ft$s/rise"
    step $PY -m rise_exp experiment=real_howdy finetune.seed="$s" method=rapidin method.lora=true method.ensemble=5 \
        stage.members=true seed=0 data.attribute_mask_prompt=true logger=csv hydra.run.dir="$OUT/ft$s/rapidin_answers"
done
step $PY -m rise_exp.report "$OUT" --no-wandb   # members pooled over finetune x sketch seeds: report.md
