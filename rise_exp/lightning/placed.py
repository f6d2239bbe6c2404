"""Lightning without the moves: the model stays where :mod:`rise_exp.models.placement` put it.

Lightning's strategies move the model to their device at setup and back to the CPU at teardown, so a
query, a probe or an evaluation after ``trainer.predict`` / ``trainer.fit`` would silently run on the CPU of
a GPU machine. A single-device run gets :class:`KeepPlaced` (no move at teardown, and none at setup for a
model that accelerate split with ``model.device_map``); any other strategy (DDP, FSDP) gets
:class:`RestorePlacement`, which puts the model back on its rank's device after Lightning's teardown.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from lightning.fabric.utilities.optimizer import _optimizers_to_device
from lightning.pytorch.strategies import SingleDeviceStrategy

from rise_exp.config.trainer import TrainerConfig
from rise_exp.models.placement import Placement, decide, dispatched


def _is_dispatched(module: torch.nn.Module) -> bool:
    return any(dispatched(m) for m in module.modules())


class KeepPlaced(SingleDeviceStrategy):
    """Lightning's single-device strategy that neither moves a dispatched model nor moves the model back
    to the CPU at teardown (the rest of :meth:`Strategy.teardown` is kept)."""

    def model_to_device(self) -> None:
        assert self.model is not None
        if not _is_dispatched(self.model) and any(p.device != self.root_device for p in self.model.parameters()):
            self.model.to(self.root_device)

    def teardown(self) -> None:
        _optimizers_to_device(self.optimizers, torch.device("cpu"))
        self.precision_plugin.teardown()
        assert self.accelerator is not None
        self.accelerator.teardown()
        self.checkpoint_io.teardown()


class RestorePlacement(L.Callback):
    """Put the module back on the placed device after the strategy's teardown moved it to the CPU."""

    def __init__(self, placement: Placement) -> None:
        self.placement = placement

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self.placement.place(pl_module)


def placed_trainer_kwargs(cfg: TrainerConfig) -> dict[str, Any]:
    """The Trainer arguments that keep the model where placement puts it: ``strategy`` (single device) or
    a :class:`RestorePlacement` callback (``callbacks``, any other strategy)."""
    placement = decide(cfg)
    single = cfg.strategy in ("auto", "single_device") and cfg.devices == 1 and cfg.num_nodes == 1
    if single:
        return {"strategy": KeepPlaced(device=placement.device)}
    return {"callbacks": [RestorePlacement(placement)]}
