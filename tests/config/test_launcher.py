"""conf/hydra/launcher/slurm.yaml composes into Hydra's submitit SLURM launcher with the trainer's shape."""

from __future__ import annotations

import importlib.util

import pytest

from rise_exp.core.paths import CONF_DIR
from rise_exp.run.config import register_schemas


@pytest.mark.skipif(
    importlib.util.find_spec("hydra_plugins.hydra_submitit_launcher") is None,
    reason="needs rise-exp[cluster] (hydra-submitit-launcher)",
)
def test_slurm_launcher_takes_nodes_and_tasks_from_the_trainer():
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    register_schemas()
    overrides = ["hydra/launcher=slurm", "trainer=ddp", "trainer.num_nodes=3", "trainer.devices=4"]
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("config", overrides=overrides, return_hydra_config=True)
    launcher = OmegaConf.to_container(cfg.hydra.launcher, resolve=False)
    assert "submitit" in launcher["_target_"] and "Slurm" in launcher["_target_"]
    assert OmegaConf.select(cfg, "hydra.launcher.nodes") == 3
    assert OmegaConf.select(cfg, "hydra.launcher.tasks_per_node") == 4
    assert OmegaConf.select(cfg, "hydra.launcher.gpus_per_node") == 4
