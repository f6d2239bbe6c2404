#!/usr/bin/env bash
# GPU acceptance check (offline): every method on the GPU against the CPU, and Pythia 1B / 6.9B / OLMo 32B
# shapes with random bf16 weights (tokens/s, RISE / forward, peak memory vs the memory model); on a GPU,
# then the default run's stages with trainer=gpu. GPU_CHECK_DEVICE=cpu: a dry run on the CPU with tiny
# shapes (CI). See docs/gpus.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 RISE_EXP_PROGRESS=0 TOKENIZERS_PARALLELISM=false PYTHONPATH="${PWD}${PYTHONPATH:+:$PYTHONPATH}"
PY="${PYTHON:-.venv/bin/python}"
"$PY" experiments/gpu_check.py "$@"
if [ "${GPU_CHECK_DEVICE:-cuda}" != cpu ] && "$PY" -c "import torch, sys; sys.exit(not torch.cuda.is_available())"; then
  tmp="$(mktemp -d)"
  for stage in attribute probe; do
    echo "## stage=$stage, trainer=gpu (embedded tiny-pythia)"
    "$PY" -m rise_exp trainer=gpu stage="$stage" paths.cache_dir="$tmp/cache" hydra.run.dir="$tmp/$stage" \
      | grep -E "auPRC|scifi_rate|peak|seconds" || true
  done
  rm -rf "$tmp"
fi
