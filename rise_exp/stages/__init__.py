"""Stage entry points: one module per stage, registered by name (``stage.name``).

Adding a stage: a module here with ``run(run: RunConfig, run_dir: Path) -> dict``, one line in
:data:`STAGES`, a settings class in ``rise_exp/config/stages.py`` (``STAGE_CONFIGS``) and
``conf/stage/<name>.yaml``. Only :mod:`rise_exp.cli` imports this package.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rise_exp.core.errors import allowed

STAGES: dict[str, str] = {
    "attribute": "rise_exp.stages.attribute:run",
    "valuate": "rise_exp.stages.valuate:run",
    "finetune": "rise_exp.stages.finetune:run",
    "closed_loop": "rise_exp.stages.closed_loop:run",
    "probe": "rise_exp.stages.probe:run",
    "query": "rise_exp.stages.query:run",
    "explain": "rise_exp.stages.explain:run",
    "select": "rise_exp.stages.select:run",
    "diagnose": "rise_exp.stages.diagnose:run",
    "lds": "rise_exp.stages.lds:run",
    "removal": "rise_exp.stages.removal:run",
}


def stage_entry(name: str) -> Callable[[Any, Path], dict[str, Any]]:
    """The entry point registered under ``name`` (a broken import raises, it is never 'unknown')."""
    if name not in STAGES:
        raise allowed("stage", name, tuple(STAGES))
    module, func = STAGES[name].split(":")
    return getattr(importlib.import_module(module), func)
