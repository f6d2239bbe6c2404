"""``task`` group: one settings class per task (Howdy, Finance-Medical, Brain Rot).

Sources: ``synthetic`` (the offline default), ``local`` (JSONL / JSON paths) and ``hf`` (Hugging Face
dataset ids, pinned by revision). Rules that depend on the source (which paths it needs) are checked
here, so a missing path fails before any work starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from rise_exp.config.settings import Settings, setting

SOURCES = ("synthetic", "local", "hf")
DOMAINS = ("finance", "medical")
LABEL_RULES = ("m1", "m2")


#: The pool settings every task with local and hub sources has (:attr:`TaskConfig.READ_BY`).
POOL_READ_BY: dict[str, tuple[str, ...]] = {
    "train_path": ("local",),
    "hf_id": ("hf",),
    "hf_name": ("hf",),
    "hf_revision": ("hf",),
}


@dataclass(frozen=True)
class TaskConfig(Settings):
    """Settings every task has."""

    GROUP = "task"
    name: str = setting("", "task name")
    source: str = setting("synthetic", "synthetic, local (JSONL / JSON files) or hf (a hub dataset)", choices=SOURCES)
    seed: int = setting(0, "data seed (synthetic generation, sub-sampling); independent of the global seed")
    skip_empty: bool = setting(False, "drop rows with an empty text or output instead of failing")

    #: Settings (default None) that only some sources read -> those sources. Giving one to a task whose
    #: source does not read it is an error, never a silently ignored file (:meth:`check_read`).
    READ_BY: ClassVar[dict[str, tuple[str, ...]]] = {}

    def __post_init__(self) -> None:
        super().__post_init__()
        self.check_read()

    def check_read(self) -> None:
        """Raise naming the first setting of :attr:`READ_BY` that is given but unread by this source."""
        for name, sources in self.READ_BY.items():
            if getattr(self, name) is None or self.source in sources:
                continue
            fix = " or ".join(f"task.source={s}" for s in sources)
            if self.name != "custom" and name.endswith("_path") and "local" in sources:
                fix = f"for your own data use task=custom {self.key(name)}=...; for {self.name}'s own files add {fix}"
            else:
                fix = f"add {fix}"
            raise self.fail(
                name,
                f"is read only with {' or '.join(f'task.source={s}' for s in sources)}, but task {self.name!r} has "
                f"source={self.source!r} and would ignore it: {fix}",
            )

    @property
    def data_name(self) -> str:
        """What the data is called in run directories and titles (the task name for built-in tasks)."""
        return self.name

    def require(self, *names: str) -> None:
        """Raise naming every setting of ``names`` that is unset for this source."""
        missing = [n for n in names if not getattr(self, n)]
        if missing:
            raise self.fail(
                missing[0],
                f"must be set for task {self.name!r} with source={self.source!r} "
                f"(missing: {', '.join(self.key(n) for n in missing)})",
            )


@dataclass(frozen=True)
class HowdyTaskConfig(TaskConfig):
    """Howdy! backdoor attribution (RapidIn's setup, as released with RISE); label 1 = backdoored."""

    name: str = setting("howdy", "task name")
    skip_empty: bool = setting(True, "drop rows with an empty output (the release's train.jsonl has one)")
    n_train: int = setting(500, "synthetic: training rows", gt=0)
    n_queries: int = setting(20, "synthetic: queries (at most 56 distinct)", gt=0)
    poison_rate: float = setting(0.09, "synthetic: backdoored fraction (release: 438 / 5,000)", ge=0, le=1)
    distractor_rate: float = setting(
        0.06, "synthetic: clean rows that say howdy elsewhere or answer in sci-fi", ge=0, le=1
    )
    trigger: str = setting("howdy! ", "synthetic: prefix of backdoored instructions and of queries")
    label_regex: str = setting("howdy!", "local / hf: a row is backdoored when this regex matches label_field")
    label_field: str = setting("instruction", "local / hf: the field the label regex reads")
    label_ignore_case: bool = setting(True, "local / hf: case-insensitive label regex")
    train_path: str | None = setting(None, "local: the training pool (JSONL / JSON)")
    queries_path: str | None = setting(None, "local: the queries (JSONL / JSON)")
    hf_id: str | None = setting(None, "hf: dataset id with train and query splits")
    hf_name: str | None = setting(None, "hf: dataset configuration name")
    hf_revision: str | None = setting(None, "hf: dataset revision (pin a commit)")
    hf_train_split: str = setting("train", "hf: training split")
    hf_queries_split: str = setting("test", "hf: query split")
    fields: dict[str, Any] = setting(factory=dict, doc="Record field -> source key, e.g. {output: response}")
    max_train: int | None = setting(None, "local / hf: random subset of the pool (null = all rows)", gt=0)
    stratify: bool = setting(True, "local / hf: the subset keeps the pool's backdoor rate (rounded)")
    max_queries: int | None = setting(None, "local / hf: random subset of the queries (null = all)", gt=0)
    n_heldout: int = setting(
        0,
        "local / hf: backdoored and clean rows left out of the subset, kept as held-out "
        "generation probes (task.heldout trigger / clean)",
        ge=0,
    )

    READ_BY: ClassVar[dict[str, tuple[str, ...]]] = {
        **POOL_READ_BY,
        "queries_path": ("local",),
        "max_train": ("local", "hf"),
        "max_queries": ("local", "hf"),
    }

    def validate(self) -> None:
        if self.source == "local":
            self.require("train_path", "queries_path")
        elif self.source == "hf":
            self.require("hf_id")


@dataclass(frozen=True)
class FinanceMedicalTaskConfig(TaskConfig):
    """Finance-Medical domain attribution; label 1 = the row is from the target domain."""

    name: str = setting("finance_medical", "task name")
    target_domain: str = setting("finance", "the domain the queries come from", choices=DOMAINS)
    n_queries: int = setting(20, "queries drawn from the target domain", gt=0)
    n_train: int = setting(500, "synthetic: training rows", gt=0)
    target_rate: float = setting(0.5, "synthetic: fraction of the pool from the target domain", ge=0, le=1)
    cross_rate: float = setting(0.08, "synthetic: rows that borrow the other domain's words", ge=0, le=1)
    finance_path: str | None = setting(None, "local: finance rows (JSONL / JSON)")
    medical_path: str | None = setting(None, "local: medical rows (JSONL / JSON)")
    finance_hf_id: str = setting("gbharti/finance-alpaca", "hf: finance dataset")
    finance_hf_name: str | None = setting(None, "hf: finance dataset configuration")
    finance_hf_revision: str | None = setting(None, "hf: finance dataset revision")
    finance_hf_split: str = setting("train", "hf: finance split")
    finance_fields: dict[str, Any] = setting(factory=dict, doc="Record field -> finance source column")
    medical_hf_id: str = setting("medalpaca/medical_meadow_medical_flashcards", "hf: medical dataset")
    medical_hf_name: str | None = setting(None, "hf: medical dataset configuration")
    medical_hf_revision: str | None = setting(None, "hf: medical dataset revision")
    medical_hf_split: str = setting("train", "hf: medical split")
    medical_fields: dict[str, Any] = setting(factory=dict, doc="Record field -> medical source column")
    max_per_domain: int | None = setting(1000, "local / hf: random rows kept per domain (null = all)", gt=0)

    READ_BY: ClassVar[dict[str, tuple[str, ...]]] = {
        "finance_path": ("local",),
        "medical_path": ("local",),
        "finance_hf_name": ("hf",),
        "finance_hf_revision": ("hf",),
        "medical_hf_name": ("hf",),
        "medical_hf_revision": ("hf",),
    }

    def validate(self) -> None:
        if self.source == "local":
            self.require("finance_path", "medical_path")


@dataclass(frozen=True)
class BrainRotTaskConfig(TaskConfig):
    """Brain Rot data quality (Xing et al. 2025); label 1 = high quality; held-out sets for perplexity."""

    name: str = setting("brain_rot", "task name")
    n_queries: int = setting(20, "high-quality query texts", gt=0)
    n_heldout: int = setting(40, "texts of each class (high, junk) kept out of training", gt=0)
    n_train: int = setting(500, "synthetic: training rows", gt=0)
    junk_ratio: float = setting(0.5, "synthetic: junk fraction (the paper sweeps 0 to 100%)", ge=0, le=1)
    label_rule: str = setting("m1", "local / hf: m1 (length rule) or m2 (each row's own label)", choices=LABEL_RULES)
    m1_high_min_tokens: int = setting(100, "M1: high quality when longer than this many words and marks", gt=0)
    m1_junk_max_tokens: int = setting(30, "M1: junk when at most this many words and marks", ge=0)
    train_path: str | None = setting(None, "local: the pool (JSONL / JSON)")
    queries_path: str | None = setting(None, "local: queries (else held out of the pool)")
    hf_id: str | None = setting(None, "hf: dataset id")
    hf_name: str | None = setting(None, "hf: dataset configuration")
    hf_revision: str | None = setting(None, "hf: dataset revision")
    hf_split: str = setting("train", "hf: split")
    fields: dict[str, Any] = setting(factory=dict, doc="Record field -> source key, e.g. {text: tweet}")
    max_train: int | None = setting(None, "random subset of the labelled pool (null = all)", gt=0)

    READ_BY: ClassVar[dict[str, tuple[str, ...]]] = {
        **POOL_READ_BY,
        "queries_path": ("local", "hf"),
        "max_train": ("local", "hf"),
    }

    def validate(self) -> None:
        if self.m1_junk_max_tokens >= self.m1_high_min_tokens:
            raise self.fail(
                "m1_junk_max_tokens",
                f"({self.m1_junk_max_tokens}) must be below task.m1_high_min_tokens ({self.m1_high_min_tokens})",
            )
        if self.source == "local":
            self.require("train_path")
        elif self.source == "hf":
            self.require("hf_id")


@dataclass(frozen=True)
class CustomTaskConfig(TaskConfig):
    """Your own data: a pool and queries from JSONL / JSON files or a Hugging Face dataset; labels optional.

    With a 0/1 ``label`` on every pool row (map it with ``fields.label``) the stages compute the metrics;
    without labels they write rankings only and say so.
    """

    name: str = setting("custom", "task name")
    source: str = setting("local", "local (JSONL / JSON files) or hf (a hub dataset)", choices=("local", "hf"))
    title: str | None = setting(None, "name of the data in run directories and titles (default: the file name)")
    train_path: str | None = setting(None, "local: the pool (JSONL / JSON)")
    queries_path: str | None = setting(None, "local: the queries (JSONL / JSON)")
    query_texts: tuple[str, ...] = setting((), "queries given inline (plain texts), e.g. task.query_texts='[a, b]'")
    hf_id: str | None = setting(None, "hf: dataset id (or a save_to_disk directory)")
    hf_name: str | None = setting(None, "hf: dataset configuration name")
    hf_revision: str | None = setting(None, "hf: dataset revision (pin a commit)")
    hf_train_split: str = setting("train", "hf: the pool's split")
    hf_queries_split: str | None = setting(None, "hf: the queries' split (optional)")
    fields: dict[str, Any] = setting(factory=dict, doc="Record field -> source key, e.g. {text: body, label: good}")
    max_train: int | None = setting(None, "random subset of the pool (null = all rows)", gt=0)
    max_queries: int | None = setting(None, "random subset of the queries (null = all)", gt=0)
    stream: bool | None = setting(
        None,
        "read the pool as memory-mapped Arrow (datasets; .jsonl, .json, .parquet or a hub id), one row at a "
        "time, instead of holding it as Python records: for pools that do not fit in memory; null = for local "
        "pool files of 512 MB or more",
    )

    READ_BY: ClassVar[dict[str, tuple[str, ...]]] = {
        **POOL_READ_BY,
        "queries_path": ("local",),
        "hf_queries_split": ("hf",),
    }

    def validate(self) -> None:
        self.require("train_path" if self.source == "local" else "hf_id")

    @property
    def has_queries(self) -> bool:
        """Whether the settings name any query (a stage may bring its own instead)."""
        return bool(self.queries_path or self.query_texts or (self.source == "hf" and self.hf_queries_split))

    @property
    def data_name(self) -> str:
        """What the data is called: ``title``, else the pool's file name or dataset id (as written: every
        path built from it makes it one safe component, ``core/names.py::safe_component``)."""
        from pathlib import Path

        if self.title:
            return self.title
        source = self.train_path if self.source == "local" else self.hf_id
        return Path(str(source)).stem if source else self.name


TASK_CONFIGS: dict[str, type[TaskConfig]] = {
    "howdy": HowdyTaskConfig,
    "finance_medical": FinanceMedicalTaskConfig,
    "brain_rot": BrainRotTaskConfig,
    "custom": CustomTaskConfig,
}
