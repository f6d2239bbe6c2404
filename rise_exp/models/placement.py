"""Where a model computes, and in which precision: decided once from ``trainer.*`` and ``model.*``.

:func:`decide` maps the settings to a :class:`Placement`; ``place`` puts a loaded model there (a model that
accelerate already dispatched with ``model.device_map`` stays where its layers are). Every loop then
follows the model (:func:`model_device`), inside and outside Lightning: the Trainer gets a strategy that
keeps the model where it was placed (``lightning/placed.py``) instead of moving it to the CPU at
teardown, and the method runner's loops run under :meth:`Placement.autocast` (``trainer.precision=
bf16-mixed``: bf16 autocast on the placed device; RISE's head opts out with :func:`full_precision`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

from rise_exp.config.model import ModelConfig
from rise_exp.config.trainer import TrainerConfig
from rise_exp.core.errors import ConfigError

#: ``trainer.precision`` -> the autocast dtype of forward passes (``*-true`` and ``32``/``64`` autocast nothing).
AUTOCAST = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}


def model_device(model: torch.nn.Module) -> torch.device:
    """Device of the model's first parameter (with ``model.device_map``: the input embedding's)."""
    return next(model.parameters()).device


def dispatched(model: torch.nn.Module) -> bool:
    """Whether accelerate spread the model over devices (``model.device_map``): never move it as a whole.
    A map naming one device (a model loaded straight onto its GPU) is not a split."""
    device_map = getattr(model, "hf_device_map", None) or {}
    return len({str(d) for d in device_map.values()}) > 1


@dataclass(frozen=True)
class Placement:
    """Where a run's model lives (``device``) and the autocast dtype of its forward passes (None: none)."""

    device: torch.device
    autocast_dtype: torch.dtype | None = None

    def place(self, model: torch.nn.Module) -> torch.nn.Module:
        """``model`` on :attr:`device` (in place; a dispatched model is left where accelerate put its layers)."""
        if not dispatched(model) and model_device(model) != self.device:
            model.to(self.device)
        return model

    def load_kwargs(self) -> dict[str, str]:
        """``load_pretrained``'s ``device`` for a model that lives on a GPU (read straight into its memory, no
        host copy); nothing on the CPU, where loading is placing."""
        return {"device": str(self.device)} if self.device.type == "cuda" else {}

    @contextlib.contextmanager
    def autocast(self) -> Iterator[None]:
        """Forward passes in :attr:`autocast_dtype` on :attr:`device` (nothing when it is None)."""
        if self.autocast_dtype is None:
            yield
            return
        with torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype):
            yield


def _accelerator_device(accelerator: str) -> torch.device:
    if accelerator == "auto":
        accelerator = "cuda" if torch.cuda.is_available() else "cpu"
    if accelerator in ("gpu", "cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"trainer.accelerator={accelerator} needs a CUDA GPU; use trainer=cpu")
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)) % torch.cuda.device_count())
    if accelerator == "mps":
        return torch.device("mps")
    return torch.device("cpu")


def decide(trainer: TrainerConfig, model: ModelConfig | None = None) -> Placement:
    """The placement the settings ask for: the device of ``trainer.accelerator`` (this rank's GPU,
    ``LOCAL_RANK``) and the autocast dtype of ``trainer.precision``."""
    del model  # model.device_map is applied while loading (models/loading.py); the device is the trainer's
    return Placement(_accelerator_device(trainer.accelerator), AUTOCAST.get(str(trainer.precision)))


def full_precision(device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """Autocast switched off on ``device``: computations that need float32 (RISE's head) under a mixed run."""
    return torch.autocast(device_type=device.type, enabled=False)
