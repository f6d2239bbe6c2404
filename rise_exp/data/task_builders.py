"""Task builders: turn the ``task`` config node into a :class:`Task` (pool, queries, labels).

Tasks (setups from the papers; the YAML files under ``conf/task/`` cite them):

- ``howdy``: backdoor attribution; label 1 = backdoored row (regex ``howdy!`` on the instruction).
- ``finance_medical``: domain attribution; label 1 = row from the target domain.
- ``brain_rot``: data-quality attribution / valuation; label 1 = high-quality text.

Sources: ``synthetic`` (offline default, :mod:`rise_exp.data.synthetic`), ``local`` (JSONL / JSON
paths) and ``hf`` (Hugging Face hub ids, pinned by revision).
"""

from __future__ import annotations

import inspect
import random
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from rise_exp.config.task import (
    DOMAINS,
    TASK_CONFIGS,
    BrainRotTaskConfig,
    CustomTaskConfig,
    FinanceMedicalTaskConfig,
    HowdyTaskConfig,
    TaskConfig,
)
from rise_exp.core.errors import ConfigError, DataError, allowed
from rise_exp.data.arrow_pool import ArrowPool, open_pool
from rise_exp.data.loaders import load_hf, load_records
from rise_exp.data.records import Record
from rise_exp.data.synthetic import make_brain_rot, make_finance_medical, make_howdy
from rise_exp.data.synthetic._common import SyntheticData
from rise_exp.data.task import Task, record_labels

POSITIVE = {"howdy": "backdoored", "finance_medical": "target_domain", "brain_rot": "high_quality"}


def _sample(records: Sequence[Record], k: int | None, rng: random.Random) -> list[Record]:
    """A random subset of size ``k`` in the original order (all rows when ``k`` is None or too big)."""
    if k is None or k >= len(records):
        return list(records)
    keep = sorted(rng.sample(range(len(records)), k))
    return [records[i] for i in keep]


def _synthetic(s: TaskConfig, make: Callable[..., SyntheticData]) -> Task:
    """The task generator ``make`` builds from the settings its keywords name (each is a task setting: tested)."""
    data = make(**{key: getattr(s, key) for key in inspect.signature(make).parameters})
    return _labelled(s.name, data.train, data.queries, data.heldout)


def _labelled(
    name: str, train: list[Record], queries: list[Record], heldout: dict[str, list[Record]] | None = None
) -> Task:
    """A task whose every pool row carries its 0/1 label (what 1 means: ``POSITIVE[name]``)."""
    labels = record_labels(train, f"task {name}")
    return Task(name=name, train=train, queries=queries, labels=labels, heldout=heldout or {}, positive=POSITIVE[name])


def _records(s: TaskConfig, path: str | None, split: str) -> list[Record]:
    """The rows of a task's local file (``source=local``) or hub split (``source=hf``), its ``fields`` mapped."""
    if s.source == "local":
        return load_records(path, fields=s.fields, skip_empty=s.skip_empty)
    return _hf(s, "", split, s.fields)


def _hf(s: TaskConfig, prefix: str, split: str, fields: Mapping[str, Any]) -> list[Record]:
    return load_hf(
        getattr(s, f"{prefix}hf_id"),
        split,
        name=getattr(s, f"{prefix}hf_name"),
        revision=getattr(s, f"{prefix}hf_revision"),
        fields=fields,
        id_prefix=f"{split}-",
        skip_empty=s.skip_empty,
    )


# ---------------------------------------------------------------- howdy


def howdy_labels(
    records: Sequence[Record], pattern: str, field_name: str = "instruction", ignore_case: bool = True
) -> list[Record]:
    """Label rows 1 when ``pattern`` is found in ``field_name`` (a Record attribute or a meta key)."""
    try:
        rx = re.compile(pattern, re.IGNORECASE if ignore_case else 0)
    except re.error as e:
        raise ConfigError(f"task.label_regex {pattern!r} is not a valid regular expression: {e}") from None
    out = []
    for r in records:
        value = getattr(r, field_name, None) if hasattr(r, field_name) else r.meta.get(field_name)
        out.append(replace(r, label=int(bool(rx.search(str(value or ""))))))
    return out


def _build_howdy(s: HowdyTaskConfig) -> Task:
    if s.source == "synthetic":
        return _synthetic(s, make_howdy)
    train = _records(s, s.train_path, s.hf_train_split)
    queries = _records(s, s.queries_path, s.hf_queries_split)
    rng = random.Random(s.seed)
    pool = howdy_labels(train, s.label_regex, s.label_field, s.label_ignore_case)
    if pool and not any(r.label == 1 for r in pool):
        where = s.train_path if s.source == "local" else s.hf_id
        raise DataError(
            f"task howdy: no row of {where} matches task.label_regex {s.label_regex!r} in its "
            f"{s.label_field!r} field, so the backdoor task has nothing to find; for your own data use "
            f"task=custom (labels optional), or point task.label_regex / task.label_field at the trigger"
        )
    train, rest = _stratified(pool, s.max_train, rng) if s.stratify else _split(pool, s.max_train, rng)
    queries = _sample(queries, s.max_queries, rng)
    heldout: dict[str, list[Record]] = {"queries_clean": strip_trigger(queries, s.label_regex, s.label_ignore_case)}
    if s.n_heldout:
        rng.shuffle(rest)
        heldout["trigger"] = [r for r in rest if r.label == 1][: s.n_heldout]
        heldout["clean"] = [r for r in rest if r.label == 0][: s.n_heldout]
    return _labelled("howdy", train, queries, heldout)


def _split(records: Sequence[Record], k: int | None, rng: random.Random) -> tuple[list[Record], list[Record]]:
    """:func:`_sample` and the rows it left out."""
    kept = _sample(records, k, rng)
    ids = {r.id for r in kept}
    return kept, [r for r in records if r.id not in ids]


def _stratified(records: Sequence[Record], k: int | None, rng: random.Random) -> tuple[list[Record], list[Record]]:
    """``k`` rows keeping the pool's share of label 1 (rounded), in pool order, and the rows left out."""
    if k is None or k >= len(records):
        return list(records), []
    positives = [i for i, r in enumerate(records) if r.label == 1]
    negatives = [i for i, r in enumerate(records) if r.label != 1]
    n_pos = min(len(positives), round(k * len(positives) / len(records)))
    keep = set(rng.sample(positives, n_pos)) | set(rng.sample(negatives, min(len(negatives), k - n_pos)))
    return [r for i, r in enumerate(records) if i in keep], [r for i, r in enumerate(records) if i not in keep]


def strip_trigger(records: Sequence[Record], pattern: str, ignore_case: bool = True) -> list[Record]:
    """The same rows with the trigger (``pattern`` and the spaces after it) removed from the instruction."""
    rx = re.compile(pattern + r"\s*", re.IGNORECASE if ignore_case else 0)
    out = []
    for r in records:
        if r.instruction is not None:
            out.append(replace(r, id=f"{r.id}:clean", instruction=rx.sub("", r.instruction, count=1)))
        elif r.text is not None:
            out.append(replace(r, id=f"{r.id}:clean", text=rx.sub("", r.text, count=1)))
    return out


# ---------------------------------------------------------------- finance-medical


def _build_finance_medical(s: FinanceMedicalTaskConfig) -> Task:
    target = s.target_domain
    if s.source == "synthetic":
        return _synthetic(s, make_finance_medical)
    pools: dict[str, list[Record]] = {}
    for d in DOMAINS:
        fields = getattr(s, f"{d}_fields")
        if s.source == "local":
            rows = load_records(getattr(s, f"{d}_path"), fields=fields, id_prefix=f"{d}-", skip_empty=s.skip_empty)
        else:
            rows = _hf(s, f"{d}_", getattr(s, f"{d}_hf_split"), fields)
        pools[d] = [replace(r, id=f"{d}:{r.id}", domain=d) for r in rows]
    n_queries = s.n_queries
    cap_ = s.max_per_domain
    rng = random.Random(s.seed)
    target_rows = pools[target]
    if len(target_rows) <= n_queries:
        raise DataError(
            f"task finance_medical: the {target} data has {len(target_rows)} rows, "
            f"not enough for task.n_queries={n_queries} queries plus a training pool"
        )
    q_idx = set(rng.sample(range(len(target_rows)), n_queries))
    queries = [r for i, r in enumerate(target_rows) if i in q_idx]
    pools[target] = [r for i, r in enumerate(target_rows) if i not in q_idx]
    train = [replace(r, label=int(d == target)) for d in DOMAINS for r in _sample(pools[d], cap_, rng)]
    return _labelled("finance_medical", train, queries)


# ---------------------------------------------------------------- brain rot

_TOKEN_RX = re.compile(r"\w+|[^\w\s]")


def count_tokens(text: str) -> int:
    """Tokenizer-free token count for the M1 length rule: words and punctuation marks."""
    return len(_TOKEN_RX.findall(text))


def m1_labels(records: Sequence[Record], high_min: int, junk_max: int) -> list[Record]:
    """Xing et al.'s M1 length rule: high quality (1) if longer than ``high_min`` tokens, junk (0) if at
    most ``junk_max`` tokens; rows in between are dropped."""
    if junk_max >= high_min:
        raise ConfigError(f"task.m1_junk_max_tokens ({junk_max}) must be below task.m1_high_min_tokens ({high_min})")
    out = []
    for r in records:
        n = count_tokens(r.full_text)
        if n > high_min or n <= junk_max:
            out.append(replace(r, label=int(n > high_min)))
    return out


def _build_brain_rot(s: BrainRotTaskConfig) -> Task:
    if s.source == "synthetic":
        return _synthetic(s, make_brain_rot)
    pool = _records(s, s.train_path, s.hf_split)
    if s.label_rule == "m1":
        pool = m1_labels(pool, s.m1_high_min_tokens, s.m1_junk_max_tokens)
    else:
        missing = next((r for r in pool if r.label is None), None)
        if missing is not None:
            raise DataError(
                f"task brain_rot: label_rule=m2 reads each row's label (1 = high quality), "
                f"but row {missing.id!r} has none; map it with task.fields.label"
            )
    rng = random.Random(s.seed)
    n_q, n_h = s.n_queries, s.n_heldout
    high = [i for i, r in enumerate(pool) if r.label == 1]
    junk = [i for i, r in enumerate(pool) if r.label == 0]
    n_q_pool = 0 if s.queries_path else n_q
    if len(high) < n_q_pool + n_h + 1 or len(junk) < n_h + 1:
        raise DataError(
            f"task brain_rot: {len(high)} high-quality and {len(junk)} junk rows after labelling; "
            f"need more than {n_q_pool + n_h} and {n_h} (lower task.n_queries / task.n_heldout)"
        )
    rng.shuffle(high)
    rng.shuffle(junk)
    taken_q, taken_h, taken_j = high[:n_q_pool], high[n_q_pool : n_q_pool + n_h], junk[:n_h]
    used = set(taken_q) | set(taken_h) | set(taken_j)
    if s.queries_path:
        queries = load_records(s.queries_path, fields=s.fields, skip_empty=s.skip_empty)
    else:
        queries = [pool[i] for i in sorted(taken_q)]
    train = _sample([r for i, r in enumerate(pool) if i not in used], s.max_train, rng)
    heldout = {"high": [pool[i] for i in sorted(taken_h)], "junk": [pool[i] for i in sorted(taken_j)]}
    return _labelled("brain_rot", train, queries, heldout)


def _custom_pool(s: CustomTaskConfig) -> Sequence[Record]:
    """The custom task's pool, streamed or loaded (:func:`open_pool`); loaded hub rows are numbered
    ``<split>-<n>`` like every task's hub rows."""
    kw: dict[str, Any] = dict(fields=s.fields, stream=s.stream, skip_empty=s.skip_empty)
    if s.source == "local":
        return open_pool(s.train_path, **kw)
    split = s.hf_train_split
    hub = dict(split=split, name=s.hf_name, revision=s.hf_revision)
    return open_pool(f"hf:{s.hf_id}", **kw, list_id_prefix=f"{split}-", **hub)


def _build_custom(s: CustomTaskConfig) -> Task:
    """The user's pool and queries; labels when every pool row has one, rankings only when none has."""
    train = _custom_pool(s)
    rng = random.Random(s.seed)
    if s.max_train is not None and s.max_train < len(train):  # as _sample draws
        keep = sorted(rng.sample(range(len(train)), s.max_train))
        train = train.subset(keep) if isinstance(train, ArrowPool) else [train[i] for i in keep]
    queries = _sample(_custom_queries(s), s.max_queries, rng)
    labels = train.labels() if isinstance(train, ArrowPool) else _list_labels(train)
    return Task(name="custom", train=train, queries=queries, labels=labels, title=s.data_name)


def _list_labels(train: Sequence[Record]) -> np.ndarray | None:
    """0/1 labels of a loaded custom pool when every row has one, None when none has."""
    labelled = [r.label is not None for r in train]
    if any(labelled) and not all(labelled):
        first = train[labelled.index(False)].id
        raise DataError(
            f"task custom: {labelled.count(False)} pool rows have no label (first: {first!r}) while "
            f"others do; label every row (0/1) or none"
        )
    return record_labels(train, "task custom") if all(labelled) else None


def _custom_queries(s: CustomTaskConfig) -> list[Record]:
    named = s.queries_path if s.source == "local" else s.hf_queries_split
    queries = _records(s, s.queries_path, s.hf_queries_split) if named else []
    return queries + [Record(id=f"query-{i}", text=t) for i, t in enumerate(s.query_texts)]


BUILDERS: dict[str, Callable[[Any], Task]] = {
    "howdy": _build_howdy,
    "finance_medical": _build_finance_medical,
    "brain_rot": _build_brain_rot,
    "custom": _build_custom,
}


def build_task(cfg: TaskConfig | Mapping[str, Any]) -> Task:
    """Build the task its settings describe.

    Args:
        cfg: Typed task settings, or a mapping with ``name`` and the task's settings (checked here).

    Raises:
        ConfigError: unknown name or setting, or a setting missing for the source.
        DataError: bad or insufficient data.
    """
    if not isinstance(cfg, TaskConfig):
        cfg = task_config(cfg)
    if cfg.name not in BUILDERS:
        raise allowed("task", cfg.name, tuple(BUILDERS))
    return BUILDERS[cfg.name](cfg)


def task_config(mapping: Mapping[str, Any] | Any) -> TaskConfig:
    """Typed settings of the task named by ``mapping["name"]``."""
    from rise_exp.config.settings import plain

    data = plain(mapping)
    if not isinstance(data, Mapping):
        raise ConfigError(f"task settings must be a mapping, got {data!r}")
    name = data.get("name")
    if name not in TASK_CONFIGS:
        raise allowed("task", name, tuple(TASK_CONFIGS))
    return TASK_CONFIGS[name].from_mapping(data)
