#!/usr/bin/env bash
# GPU acceptance check (offline): every method and every stage on the GPU against the CPU, and Pythia 1B /
# 6.9B / OLMo 32B shapes with random bf16 weights (tokens/s, RISE / forward, peak memory vs the memory model).
# GPU_CHECK_DEVICE=cpu: a dry run on the CPU with tiny shapes (CI). See docs/gpus.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 RISE_EXP_PROGRESS=0 TOKENIZERS_PARALLELISM=false PYTHONPATH="${PWD}${PYTHONPATH:+:$PYTHONPATH}"
PY="${PYTHON:-.venv/bin/python}"
exec "$PY" experiments/gpu_check.py "$@"
