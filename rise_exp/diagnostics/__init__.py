"""Fidelity diagnostics: one module per question a user of an attribution method asks (issue 13).

Each diagnostic is ``run(inputs: DiagnosticInputs) -> DiagnosticResult``: tables (Markdown + CSV), plots
and headline numbers; ``stages/diagnose.py`` prepares the inputs, writes the files and publishes.
This package sits below the stages and above the orchestration layer (pipeline, runner).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from rise_exp.config.diagnostics import DIAGNOSTICS
from rise_exp.core.errors import allowed

#: diagnostic name -> ``module:function``
ENTRIES: dict[str, str] = {name: f"rise_exp.diagnostics.{name}:run" for name in DIAGNOSTICS}


def diagnostic_entry(name: str) -> Callable:
    """The ``run`` function of diagnostic ``name``."""
    if name not in ENTRIES:
        raise allowed("diagnostic", name, tuple(ENTRIES))
    module, func = ENTRIES[name].split(":")
    return getattr(importlib.import_module(module), func)
