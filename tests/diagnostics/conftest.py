"""A tiny prepared run (embedded model, synthetic Howdy, one finetuning epoch) shared by the diagnostics tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from rise_exp.diagnostics.context import DiagnosticInputs
from rise_exp.run.config import RunConfig, compose
from tests.helpers import tiny_run

TINY = tiny_run("model.layers=2", "task.n_train=40", "task.n_queries=4")  # two blocks: layer-wise diagnostics


@pytest.fixture(scope="session")
def tiny_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("diagnostics_cache")


@pytest.fixture(scope="session")
def tiny_overrides(tiny_cache) -> list[str]:
    """Overrides of the tiny run (cache in a session directory)."""
    return [*TINY, f"paths.cache_dir={tiny_cache}"]


@pytest.fixture(scope="session")
def tiny_prepared(tiny_overrides, tmp_path_factory) -> Any:
    from rise_exp.run.pipeline import prepare

    run = RunConfig.from_cfg(compose(tiny_overrides))
    return prepare(run, tmp_path_factory.mktemp("prep"))


@pytest.fixture()
def diagnostic_inputs(tiny_overrides, tiny_prepared, tmp_path) -> Callable[..., DiagnosticInputs]:
    """``make(name, *overrides)``: the inputs of diagnostic ``name`` on the tiny run."""

    def make(name: str, *overrides: str) -> DiagnosticInputs:
        run = RunConfig.from_cfg(compose([*tiny_overrides, f"diagnostic={name}", *overrides]))
        return DiagnosticInputs(run, tmp_path, tiny_prepared.task, tiny_prepared.ctx, run.stage.settings)

    return make
