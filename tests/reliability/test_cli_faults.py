"""User errors of the command line are one line and exit 2, before any work, and never leave an earlier
run's results next to a failed status: names that would escape their directory, a missing GPU."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import start_cli

EARLIER = ("metrics.json", "members.csv", "scores.npy", "topk.jsonl", "values.npy", "selection.jsonl")


def seeded(run: Path) -> Path:
    """A run dir holding an earlier run's results."""
    run.mkdir(parents=True)
    for name in EARLIER:
        (run / name).write_text("earlier")
    return run


def test_user_errors_are_one_line_exit_2_and_retire_earlier_results(tmp_path):
    import torch

    cases = {
        "escaping model name": (
            [f"hydra.run.dir={seeded(tmp_path / 'a' / 'run')}", "model.name=../../x"],
            "error: model.name '../../x' is not a safe name",
        ),
        "escaping task name in the run dir": (["task.name=../../../x"], "error: task.name '../../../x' is not a safe"),
    }
    if not torch.cuda.is_available():
        cases["trainer=gpu without a GPU"] = (
            [f"hydra.run.dir={seeded(tmp_path / 'c' / 'run')}", "trainer=gpu"],
            "error: trainer.accelerator=gpu needs a CUDA GPU",
        )
    procs = {}
    for name, (overrides, _) in cases.items():
        cwd = tmp_path / name.replace(" ", "_")
        cwd.mkdir()
        procs[name] = start_cli("logger=none", *overrides, cache=cwd / "cache", cwd=cwd)
    for name, proc in procs.items():
        _, err = proc.communicate(timeout=600)
        lines = err.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith(cases[name][1]), (name, err[-2000:])
        cwd = tmp_path / name.replace(" ", "_")
        assert not (cwd / "cache").exists(), f"{name}: work started"
        assert not [p for p in tmp_path.rglob("x")], f"{name}: a directory escaped"
    for run in (tmp_path / "a" / "run", tmp_path / "c" / "run"):
        if not run.exists():
            continue
        assert json.loads((run / "status.json").read_text())["status"] == "failed"
        for name in EARLIER:
            assert not (run / name).exists() and (run / f"{name}.stale").read_text() == "earlier"
    assert not (tmp_path / "escaping_task_name_in_the_run_dir" / "outputs").exists()


@pytest.mark.parametrize("accelerator", ["gpu", "mps"])
def test_missing_hardware_is_a_config_error_naming_the_setting(accelerator, monkeypatch):
    from rise_exp.config.trainer import TrainerConfig
    from rise_exp.core.errors import ConfigError
    from rise_exp.run import hardware

    monkeypatch.setattr(hardware, "visible_devices", lambda kind: 0)
    with pytest.raises(ConfigError, match=f"trainer.accelerator={accelerator} needs"):
        hardware.check_hardware(TrainerConfig(accelerator=accelerator))
    monkeypatch.setattr(hardware, "visible_devices", lambda kind: -1 if kind == "cpu" else 1)
    with pytest.raises(ConfigError, match="trainer.devices=2 but only 1"):
        hardware.check_hardware(TrainerConfig(accelerator=accelerator, devices=2))
    hardware.check_hardware(TrainerConfig(accelerator="cpu", devices=2))


def test_names_are_checked_in_every_settings_class():
    from rise_exp.config.model import ModelConfig
    from rise_exp.core.errors import ConfigError
    from rise_exp.methods.registry import config_class

    for bad in ("../x", "a/b", ".hidden", "", "x y"):
        with pytest.raises(ConfigError, match="model.name .* is not a safe name"):
            ModelConfig(name=bad)
    with pytest.raises(ConfigError, match="method.name"):
        config_class("rise")(name="../rise")
    ModelConfig(name="pythia-1.4b+lora_v2", source="hub", hub_id="EleutherAI/pythia-1.4b")
