"""What every diagnostic gets: the run, the prepared task and model, RISE's settings and its encoded rows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rise_exp.data.encoding import EncodedRow
from rise_exp.data.records import Record
from rise_exp.data.task_builders import Task
from rise_exp.diagnostics.result import DiagnosticResult, Section
from rise_exp.methods.base import MethodContext
from rise_exp.methods.rise.config import RiseMethodConfig
from rise_exp.run.config import RunConfig

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def rise_settings(run: RunConfig) -> RiseMethodConfig:
    """The run's RISE settings (``method=rise``), else RISE's defaults with the run's seed."""
    if isinstance(run.method, RiseMethodConfig):
        return run.method
    return RiseMethodConfig(seed=run.seed)


def subset(n_total: int, n: int | None, seed: int) -> np.ndarray:
    """Sorted indices of ``n`` of ``n_total`` items drawn without replacement (all when ``n`` is None or larger)."""
    if n is None or n >= n_total:
        return np.arange(n_total)
    return np.sort(np.random.default_rng(seed).choice(n_total, size=n, replace=False))


@dataclass
class DiagnosticInputs:
    """The run, its prepared task and finetuned model, and the chosen diagnostic's settings.

    Attributes:
        run: The typed run config (``run.stage`` is the diagnose stage's settings).
        run_dir: Where the diagnostic writes its files.
        task: The task (pool, queries, labels).
        ctx: The method context (finetuned model, tokenizer, checkpoints, token rule).
        settings: ``run.stage.<diagnostic>``.
        overrides: The command-line overrides of the run (quoted in the output's command line).
    """

    run: RunConfig
    run_dir: Path
    task: Task
    ctx: MethodContext
    settings: Any
    overrides: tuple[str, ...] = ()

    @cached_property
    def rise(self) -> RiseMethodConfig:
        """RISE's settings for this run."""
        return rise_settings(self.run)

    @property
    def model(self) -> Any:
        return self.ctx.model

    @property
    def pad_id(self) -> int:
        return int(self.ctx.tokenizer.pad_token_id)

    def encode(self, records: Sequence[Record], role: str) -> list[EncodedRow]:
        """Rows as RISE encodes them (``role`` train or query): the tokens every diagnostic scores."""
        from rise_exp.methods.rise.method import RiseMethod

        return list(RiseMethod(self.rise, self.ctx).encode(records, role))  # diagnostics revisit rows: encode once

    @cached_property
    def pool_rows(self) -> list[EncodedRow]:
        return self.encode(self.task.train, "train")

    @cached_property
    def query_rows(self) -> list[EncodedRow]:
        return self.encode(self.task.queries, "query")

    @property
    def labels(self) -> np.ndarray:
        """0/1 labels ``[N]`` or ``[Q, N]`` of the pool."""
        return np.asarray(self.task.labels)

    def result(
        self, title: str, sections: Sequence[Section], metrics: dict[str, float], *figures: Figure
    ) -> DiagnosticResult:
        """The result of a diagnostic, named by its first section's key (the diagnostic's name): its command
        line, and each figure under the key of the section it belongs to (figure ``i``: section ``i``)."""
        name = sections[0].key
        return DiagnosticResult(
            name=name,
            title=title,
            sections=list(sections),
            metrics=metrics,
            figures={section.key: figure for section, figure in zip(sections, figures)},
            command=self.command(name),
        )

    def command(self, name: str) -> str:
        """The command line of this diagnostic, with the run's other overrides."""
        rest = [o for o in self.overrides if not o.startswith(("stage=", "diagnostic=", "hydra."))]
        return " ".join(["python -m rise_exp stage=diagnose", f"diagnostic={name}", *rest])
