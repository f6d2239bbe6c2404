"""Every combination of model x task x method composes, and the presets resolve."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

CONF = Path(__file__).resolve().parent.parent / "conf"


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def test_groups_hold_the_required_options():
    assert set(options("task")) >= {"howdy", "finance_medical", "brain_rot"}
    assert set(options("method")) >= {"rise", "rapidin", "zo_inf", "stride", "bm25"}
    assert set(options("trainer")) >= {"cpu", "gpu", "ddp"}
    assert set(options("logger")) >= {"wandb", "csv", "none"}
    assert set(options("stage")) >= {"finetune", "attribute"}
    pythia = {f"pythia-{s}" for s in ("14m", "31m", "70m", "160m", "410m", "1b", "1.4b", "2.8b", "6.9b")}
    olmo = {f"olmo-{s}" for s in ("1b", "7b", "13b", "32b")}
    assert set(options("model")) >= pythia | olmo | {"tiny-pythia", "tiny-olmo"}


def test_every_model_task_method_combination_composes():
    combos = list(itertools.product(options("model"), options("task"), options("method")))
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        for model, task, method in combos:
            cfg = compose("config", overrides=[f"model={model}", f"task={task}", f"method={method}"])
            resolved = OmegaConf.to_container(cfg, resolve=True)
            assert resolved["model"]["name"] == model
            assert resolved["task"]["name"] == task
            assert resolved["method"]["name"] == method


@pytest.mark.parametrize("group", ["trainer", "logger", "stage", "finetune", "ablation"])
def test_every_option_of_other_groups_composes(group):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        for opt in options(group):
            OmegaConf.to_container(compose("config", overrides=[f"{group}={opt}"]), resolve=True)


def test_experiment_presets_compose():
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        for opt in options("experiment"):
            OmegaConf.to_container(compose("config", overrides=[f"experiment={opt}"]), resolve=True)
