"""``logger`` group: Weights & Biases (offline by default) and CSV, or nothing."""

from __future__ import annotations

from dataclasses import dataclass

from rise_exp.config.settings import Settings, setting

KINDS = ("wandb", "csv", "none")


@dataclass(frozen=True)
class LoggerConfig(Settings):
    """Run loggers; every kind but ``none`` also writes CSV into the run directory."""

    GROUP = "logger"
    kind: str = setting("none", "wandb (plus CSV), csv or none", choices=KINDS)
    project: str = setting("rise-exp", "W&B project")
    entity: str | None = setting(None, "W&B entity (team or user)")
    offline: bool = setting(True, "W&B offline mode: runs land in <run dir>/wandb; `wandb sync` uploads them")
    tags: tuple[str, ...] = setting((), "W&B tags")
