#!/usr/bin/env bash
# Real Howdy over finetune seeds: the 8-epoch LoRA finetune of experiment=real_howdy repeated with other
# finetune seeds (shuffling and LoRA initialisation), each checked by generation and attributed by
#   rise     RISE over five sketch seeds from one forward pass (an ensemble of 5 scored member by member:
#            sketch seeds 0, 1000, ..., 4000; members.csv), every token and answers only (~3 min);
#   rapidin  RapidIn on the adapter's gradients, answers only, over five RapidGrad seeds from one gradient
#            pass (~18 min);
#   zo_inf   ZO-Inf, all parameters, over the finetune's 9 checkpoints, every token and answers only (no
#            method seed; the second rule reuses the first one's cached token losses: ~15 min for both);
#   stride   STRIDE shortened (100 subsets, 30 steps) with method seed = finetune seed, answers only (~26 min);
#   stride_all  the same with every token scored (~26 min).
#   bash experiments/real_howdy_finetune_seeds.sh <howdy data dir> [out dir] [finetune seeds...]
#   STEPS="zo_inf stride" bash experiments/real_howdy_finetune_seeds.sh ...   # only those steps
# Each finetune is about 20 min on one thread here; a killed one resumes after its last finished epoch, and a
# run whose directory already holds a finished result (status ok) is skipped, so a rerun only adds what is
# missing. Minutes are one thread next to one other job on this project's 2-core CPU.
set -uo pipefail
export HOWDY_DATA="${1:?usage: real_howdy_finetune_seeds.sh <howdy data dir> [out dir] [seeds...]}"
OUT="${2:-multirun/real_howdy_ft_seeds}"
shift $(( $# >= 2 ? 2 : 1 ))
SEEDS=("${@:-0 1 2 3 4}")
STEPS="${STEPS:-probe rise rapidin zo_inf stride stride_all}"
PY="${PYTHON:-python}"
export RISE_EXP_PROGRESS="${RISE_EXP_PROGRESS:-1}"
step() { echo "== $*"; "$@" || echo "== FAILED (exit $?): $*"; }
# once "<run dirs>" cmd...: run cmd unless every run dir already holds a finished result.
once() {
    local d
    for d in $1; do
        grep -qs '"ok"' "$d/status.json" || { shift; step "$@"; return; }
    done
    echo "== finished already: $1"
}
wanted() { [[ " $STEPS " == *" $1 "* ]]; }

for s in ${SEEDS[@]}; do
    R="$OUT/ft$s"
    wanted probe && once "$R/probe" $PY -m rise_exp experiment=real_howdy stage=probe finetune.seed="$s" \
        logger=csv hydra.run.dir="$R/probe"
    wanted rise && once "$R/rise/0 $R/rise/1" $PY -m rise_exp -m experiment=real_howdy finetune.seed="$s" \
        method=rise method.ensemble=5 stage.members=true seed=0 data.attribute_mask_prompt=false,true \
        logger=csv hydra.sweep.dir="$R/rise"
    wanted rapidin && once "$R/rapidin_answers" $PY -m rise_exp experiment=real_howdy finetune.seed="$s" \
        method=rapidin method.lora=true method.ensemble=5 stage.members=true seed=0 data.attribute_mask_prompt=true \
        logger=csv hydra.run.dir="$R/rapidin_answers"
    wanted zo_inf && once "$R/zo_inf/0 $R/zo_inf/1" $PY -m rise_exp -m experiment=real_howdy finetune.seed="$s" \
        method=zo_inf method.params=all data.attribute_mask_prompt=false,true logger=csv hydra.sweep.dir="$R/zo_inf"
    wanted stride && once "$R/stride_answers" $PY -m rise_exp experiment=real_howdy finetune.seed="$s" \
        method=stride method.steps=30 method.max_subsets=100 method.max_tokens=2048 seed="$s" \
        data.attribute_mask_prompt=true logger=csv hydra.run.dir="$R/stride_answers"
    wanted stride_all && once "$R/stride_all" $PY -m rise_exp experiment=real_howdy finetune.seed="$s" \
        method=stride method.steps=30 method.max_subsets=100 method.max_tokens=2048 seed="$s" \
        data.attribute_mask_prompt=false logger=csv hydra.run.dir="$R/stride_all"
done
# mean ± std over finetune seeds (and method seeds); ensemble members pooled over finetune x sketch seeds
step $PY -m rise_exp.report "$OUT" --pool finetune.seed --no-wandb
