"""Is the configured hardware there? One-line errors naming the setting, before any work.

A config can be valid and still not run on this machine (``trainer=gpu`` without a GPU, more devices
than are visible). :func:`check_hardware` turns that into a :class:`~rise_exp.core.errors.ConfigError`
naming ``trainer.accelerator`` / ``trainer.devices``, instead of a Lightning traceback minutes in.
It is separate from :meth:`RunConfig.from_cfg`, whose verdict does not depend on the machine.
"""

from __future__ import annotations

from rise_exp.config.trainer import TrainerConfig
from rise_exp.core.errors import ConfigError


def visible_devices(accelerator: str) -> int:
    """How many devices of ``accelerator`` this process sees (``cpu``/``auto``: treated as always there)."""
    import torch

    if accelerator in ("gpu", "cuda"):
        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    if accelerator == "mps":
        return int(torch.backends.mps.is_available())
    return -1


def check_hardware(cfg: TrainerConfig) -> None:
    """Raise a one-line ConfigError when ``cfg`` asks for devices this machine does not have."""
    visible = visible_devices(cfg.accelerator)
    if visible == 0:
        kind = "a CUDA GPU" if cfg.accelerator in ("gpu", "cuda") else "an Apple MPS device"
        raise ConfigError(
            f"trainer.accelerator={cfg.accelerator} needs {kind}, but none is available on this machine; "
            "use trainer=cpu (or trainer=ddp_sim to simulate data parallelism on the CPU)"
        )
    if visible > 0 and cfg.devices > visible:
        raise ConfigError(
            f"trainer.devices={cfg.devices} but only {visible} {cfg.accelerator} device(s) are visible; "
            "set trainer.devices to at most that (or -1 for all)"
        )
