#!/usr/bin/env bash
# The paper's Howdy experiment on SmolLM2-135M-Instruct (experiment=real_howdy), every step and the report.
#   bash experiments/real_howdy.sh <dir with the release's train.jsonl and queries.jsonl> [sweep root]
# Numbers and timings of a run on this project's 2-core CPU: experiments/README.md, "Real pretrained model".
# A step that fails is reported and the next one runs (the finetune and indexes are cached, so a rerun
# only redoes what is missing).
set -uo pipefail
export HOWDY_DATA="${1:?usage: real_howdy.sh <howdy data dir> [out dir]}"
OUT="${2:-multirun/real_howdy}"
PY="${PYTHON:-python}"
export RISE_EXP_PROGRESS="${RISE_EXP_PROGRESS:-1}"
step() { echo "== $*"; "$@" || echo "== FAILED (exit $?): $*"; }

# 1. Finetune (LoRA, cached) and check by generation that the backdoor is learned: sci-fi share on held-out
#    triggered prompts vs clean ones, after and before (finetune.epochs=0: the model as loaded).
step $PY -m rise_exp experiment=real_howdy stage=probe logger=csv hydra.run.dir="$OUT/probe_after"
step $PY -m rise_exp experiment=real_howdy stage=probe finetune.epochs=0 logger=csv hydra.run.dir="$OUT/probe_before"

# 2. Attribution on the finetuned model: RISE over five sketch seeds and both token rules, BM25 both rules,
#    then the gradient baselines (RapidIn on the LoRA adapter's gradients, as its paper does for LoRA
#    finetunes, over five compression seeds from one gradient pass: an ensemble of 5 scored member by member,
#    seeds 0, 1000, ..., 4000; ZO-Inf has no seed; STRIDE once, its operator training shortened to fit).
step $PY -m rise_exp -m experiment=real_howdy method=rise seed=0,1,2,3,4 data.attribute_mask_prompt=false,true \
    logger=csv hydra.sweep.dir="$OUT/attribute/rise"
step $PY -m rise_exp -m experiment=real_howdy method=bm25 data.attribute_mask_prompt=false,true \
    logger=csv hydra.sweep.dir="$OUT/attribute/bm25"
step $PY -m rise_exp -m experiment=real_howdy method=rapidin method.lora=true method.ensemble=5 stage.members=true \
    seed=0 data.attribute_mask_prompt=false,true \
    logger=csv hydra.sweep.dir="$OUT/attribute/rapidin"
step $PY -m rise_exp -m experiment=real_howdy method=zo_inf method.params=all data.attribute_mask_prompt=false,true \
    logger=csv hydra.sweep.dir="$OUT/attribute/zo_inf"
step $PY -m rise_exp -m experiment=real_howdy method=stride method.steps=30 method.max_subsets=100 method.max_tokens=2048 seed=0 \
    data.attribute_mask_prompt=false,true logger=csv hydra.sweep.dir="$OUT/attribute/stride"

# 3. The full released pool (4,999 rows) with the pretrained model as it ships (no finetune): BM25, and RISE
#    over five sketch seeds from one forward pass (an ensemble of 5 whose members are scored alone:
#    sketch seeds 42, 1042, ..., 4042; members.csv).
step $PY -m rise_exp -m experiment=real_howdy finetune.epochs=0 task.max_train=null task.n_heldout=0 method=bm25 \
    logger=csv hydra.sweep.dir="$OUT/full_pool/bm25"
step $PY -m rise_exp -m experiment=real_howdy finetune.epochs=0 task.max_train=null task.n_heldout=0 method=rise \
    method.ensemble=5 stage.members=true logger=csv hydra.sweep.dir="$OUT/full_pool/rise"

step $PY -m rise_exp.report "$OUT/attribute" --no-wandb
step $PY -m rise_exp.report "$OUT/full_pool" --no-wandb
