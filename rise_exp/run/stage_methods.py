"""The methods a run's stage builds, each with its merged settings and where the user sets them.

One place for the stages that run several methods (``lds`` and ``removal``: ``stage.methods`` with
``stage.method_overrides.<m>``; ``closed_loop``: its method selectors with ``stage.methods.<m>``) and for
admission, which estimates each of them before anything loads. Every other stage that builds a method builds
the run's own ``method``; ``finetune`` and ``probe`` build none.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rise_exp.config.settings import Settings
from rise_exp.config.stages import BUILTIN_SELECTORS, ClosedLoopStageConfig, CounterfactualStageConfig
from rise_exp.run.config import RunConfig, named_method

#: Stages that build no attribution method (they train, or generate from the model).
METHODLESS_STAGES = ("finetune", "probe")


@dataclass(frozen=True)
class StageMethod:
    """One method a stage builds.

    Attributes:
        name: The method (``rise``, ``ekfac``, ...).
        prefix: Where its settings are typed: ``method``, ``stage.method_overrides.<name>`` (lds, removal) or
            ``stage.methods.<name>`` (closed_loop).
        listed_in: The stage's setting that lists it (``stage.methods``, ``stage.selectors``); None: the run's
            own ``method``.
        stage: The stage's name.
        overrides: The stage's per-method settings, merged over the method's own.
    """

    name: str
    prefix: str = "method"
    listed_in: str | None = None
    stage: str = ""
    overrides: Mapping[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """How a one-line message names it: ``method=ekfac``, or ``ekfac (in stage=lds's methods)``."""
        if self.listed_in is None:
            return f"method={self.name}"
        return f"{self.name} (in stage={self.stage}'s {self.listed_in.removeprefix('stage.')})"

    def settings(self, run: RunConfig) -> Settings:
        """Its typed settings, merged exactly as the stage merges them (:func:`~rise_exp.run.config.named_method`)."""
        return run.method if self.listed_in is None else named_method(run, self.name, self.overrides)


def stage_methods(run: RunConfig) -> list[StageMethod]:
    """The methods ``run.stage`` builds, in the order it builds them (settings not composed yet: cheap)."""
    st = run.stage
    if isinstance(st, CounterfactualStageConfig):
        over = st.method_overrides
        return [
            StageMethod(n, f"stage.method_overrides.{n}", "stage.methods", st.name, over.get(n) or {})
            for n in st.methods
        ]
    if isinstance(st, ClosedLoopStageConfig):
        return [
            StageMethod(n, f"stage.methods.{n}", "stage.selectors", st.name, st.methods.get(n) or {})
            for n in st.selectors
            if n not in BUILTIN_SELECTORS
        ]
    if st.name in METHODLESS_STAGES:
        return []
    return [StageMethod(run.method.name)]
