"""Task builders: turn the ``task`` config node into a :class:`Task` (pool, queries, labels).

Tasks (setups from the papers; the YAML files under ``conf/task/`` cite them):

- ``howdy``: backdoor attribution; label 1 = backdoored row (regex ``howdy!`` on the instruction).
- ``finance_medical``: domain attribution; label 1 = row from the target domain.
- ``brain_rot``: data-quality attribution / valuation; label 1 = high-quality text.

Sources: ``synthetic`` (offline default, :mod:`rise_exp.data.synthetic`), ``local`` (JSONL / JSON
paths) and ``hf`` (Hugging Face hub ids, pinned by revision).
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from rise_exp.data.loaders import load_hf, load_records
from rise_exp.data.records import Record
from rise_exp.data.synthetic import make_brain_rot, make_finance_medical, make_howdy
from rise_exp.data.synthetic._common import SyntheticData, check_size
from rise_exp.data.synthetic.finance_medical import DOMAINS
from rise_exp.errors import ConfigError, DataError, allowed

SOURCES: tuple[str, ...] = ("synthetic", "local", "hf")


@dataclass
class Task:
    """A training pool with relevance labels, the queries, and evaluation extras.

    Attributes:
        name: Task name (``howdy``, ``finance_medical``, ``brain_rot``).
        train: The training pool, labels set on every row.
        queries: Query records.
        labels: 0/1 ints, ``[N]`` shared by all queries or ``[Q, N]`` per query.
        candidates: Valuation pool (defaults to ``train``).
        heldout: Named extra sets, e.g. ``{"high": [...], "junk": [...]}`` for Brain Rot perplexity.
        positive: What label 1 means, e.g. ``"backdoored"``.
    """

    name: str
    train: list[Record]
    queries: list[Record]
    labels: np.ndarray
    candidates: list[Record] = field(default_factory=list)
    heldout: dict[str, list[Record]] = field(default_factory=dict)
    positive: str = "positive"

    def __post_init__(self) -> None:
        if not self.train or not self.queries:
            raise DataError(f"task {self.name!r}: needs at least one training row and one query "
                            f"(got {len(self.train)} and {len(self.queries)})")
        self.labels = np.asarray(self.labels, dtype=np.int64)
        n, q = len(self.train), len(self.queries)
        if self.labels.shape not in ((n,), (q, n)):
            raise DataError(f"task {self.name!r}: labels of shape {self.labels.shape}; expected ({n},) or ({q}, {n})")
        if not np.isin(self.labels, (0, 1)).all():
            raise DataError(f"task {self.name!r}: labels must be 0/1")
        if not self.candidates:
            self.candidates = list(self.train)

    def data_hash(self) -> str:
        """A stable 16-hex-digit hash of the train and query contents (ids, texts, labels, meta)."""
        payload = {"train": [r.to_dict() for r in self.train], "queries": [r.to_dict() for r in self.queries]}
        blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, default=str).encode("utf-8")
        return hashlib.sha256(blob).hexdigest()[:16]


# ---------------------------------------------------------------- settings

_COMMON = {"name": None, "source": "synthetic", "seed": 0, "skip_empty": False}
DEFAULTS: dict[str, dict[str, Any]] = {
    "howdy": {
        **_COMMON, "n_train": 500, "n_queries": 20, "poison_rate": 0.09, "distractor_rate": 0.06,
        "trigger": "howdy! ", "label_regex": "howdy!", "label_field": "instruction", "label_ignore_case": True,
        "train_path": None, "queries_path": None, "hf_id": None, "hf_name": None, "hf_revision": None,
        "hf_train_split": "train", "hf_queries_split": "test", "fields": {}, "max_train": None,
        "max_queries": None,
    },
    "finance_medical": {
        **_COMMON, "n_train": 500, "n_queries": 20, "target_domain": "finance", "target_rate": 0.5,
        "cross_rate": 0.08, "finance_path": None, "medical_path": None,
        "finance_hf_id": "gbharti/finance-alpaca", "finance_hf_name": None, "finance_hf_revision": None,
        "finance_hf_split": "train", "finance_fields": {},
        "medical_hf_id": "medalpaca/medical_meadow_medical_flashcards", "medical_hf_name": None,
        "medical_hf_revision": None, "medical_hf_split": "train", "medical_fields": {},
        "max_per_domain": 1000,
    },
    "brain_rot": {
        **_COMMON, "n_train": 500, "n_queries": 20, "junk_ratio": 0.5, "n_heldout": 40,
        "label_rule": "m1", "m1_high_min_tokens": 100, "m1_junk_max_tokens": 30,
        "train_path": None, "queries_path": None, "hf_id": None, "hf_name": None, "hf_revision": None,
        "hf_split": "train", "fields": {}, "max_train": None,
    },
}
POSITIVE = {"howdy": "backdoored", "finance_medical": "target_domain", "brain_rot": "high_quality"}
LABEL_RULES: tuple[str, ...] = ("m1", "m2")


def _settings(cfg: Any) -> dict[str, Any]:
    """The task node as a plain dict, defaults filled in, unknown keys rejected."""
    if cfg is None:
        raise ConfigError("task config is missing; set task=<name> (allowed: " + ", ".join(sorted(DEFAULTS)) + ")")
    try:
        from omegaconf import DictConfig, OmegaConf

        if isinstance(cfg, DictConfig):
            cfg = OmegaConf.to_container(cfg, resolve=True)
    except ImportError:  # pragma: no cover - omegaconf is a dependency
        pass
    if not isinstance(cfg, Mapping):
        raise ConfigError(f"task config must be a mapping; got {type(cfg).__name__}")
    name = cfg.get("name")
    if name not in DEFAULTS:
        raise allowed("task.name", name, tuple(DEFAULTS))
    unknown = sorted(set(cfg) - set(DEFAULTS[name]))
    if unknown:
        raise ConfigError(f"unknown setting(s) {['task.' + k for k in unknown]} for task {name!r}; "
                          f"allowed: {', '.join(sorted(DEFAULTS[name]))}")
    out = {**DEFAULTS[name], **dict(cfg)}
    if out["source"] not in SOURCES:
        raise allowed("task.source", out["source"], SOURCES)
    for k in ("fields", "finance_fields", "medical_fields"):
        if k in out and out[k] is None:
            out[k] = {}
    return out


def _require(s: Mapping[str, Any], *keys: str) -> None:
    missing = [k for k in keys if not s.get(k)]
    if missing:
        raise ConfigError(f"task {s['name']!r} with source={s['source']!r} needs "
                          + ", ".join(f"task.{k}" for k in missing) + " to be set")


def _sample(records: Sequence[Record], k: int | None, rng: random.Random) -> list[Record]:
    """A random subset of size ``k`` in the original order (all rows when ``k`` is None or too big)."""
    if k is None or k >= len(records):
        return list(records)
    keep = sorted(rng.sample(range(len(records)), k))
    return [records[i] for i in keep]


def _optional_size(s: Mapping[str, Any], key: str) -> int | None:
    return None if s[key] is None else check_size(key, s[key])


def _from_synthetic(name: str, data: SyntheticData) -> Task:
    return Task(name=name, train=data.train, queries=data.queries,
                labels=np.array([r.label for r in data.train]), heldout=data.heldout, positive=POSITIVE[name])


def _hf(s: Mapping[str, Any], prefix: str, split_key: str, fields_key: str) -> list[Record]:
    return load_hf(s[f"{prefix}hf_id"], s[split_key], name=s[f"{prefix}hf_name"],
                   revision=s[f"{prefix}hf_revision"], fields=s[fields_key],
                   id_prefix=f"{s[split_key]}-", skip_empty=bool(s["skip_empty"]))


# ---------------------------------------------------------------- howdy


def howdy_labels(records: Sequence[Record], pattern: str, field_name: str = "instruction",
                 ignore_case: bool = True) -> list[Record]:
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


def _build_howdy(s: Mapping[str, Any]) -> Task:
    if s["source"] == "synthetic":
        return _from_synthetic("howdy", make_howdy(
            n_train=s["n_train"], n_queries=s["n_queries"], poison_rate=s["poison_rate"],
            distractor_rate=s["distractor_rate"], trigger=s["trigger"], seed=s["seed"]))
    if s["source"] == "local":
        _require(s, "train_path", "queries_path")
        train = load_records(s["train_path"], fields=s["fields"], skip_empty=bool(s["skip_empty"]))
        queries = load_records(s["queries_path"], fields=s["fields"], skip_empty=bool(s["skip_empty"]))
    else:
        _require(s, "hf_id")
        train = _hf(s, "", "hf_train_split", "fields")
        queries = _hf(s, "", "hf_queries_split", "fields")
    rng = random.Random(s["seed"])
    train = _sample(train, _optional_size(s, "max_train"), rng)
    queries = _sample(queries, _optional_size(s, "max_queries"), rng)
    train = howdy_labels(train, s["label_regex"], s["label_field"], bool(s["label_ignore_case"]))
    return Task(name="howdy", train=train, queries=queries, labels=np.array([r.label for r in train]),
                positive=POSITIVE["howdy"])


# ---------------------------------------------------------------- finance-medical


def _build_finance_medical(s: Mapping[str, Any]) -> Task:
    target = s["target_domain"]
    if target not in DOMAINS:
        raise allowed("task.target_domain", target, DOMAINS)
    if s["source"] == "synthetic":
        return _from_synthetic("finance_medical", make_finance_medical(
            n_train=s["n_train"], n_queries=s["n_queries"], target_domain=target,
            target_rate=s["target_rate"], cross_rate=s["cross_rate"], seed=s["seed"]))
    pools: dict[str, list[Record]] = {}
    for d in DOMAINS:
        if s["source"] == "local":
            _require(s, f"{d}_path")
            rows = load_records(s[f"{d}_path"], fields=s[f"{d}_fields"], id_prefix=f"{d}-",
                                skip_empty=bool(s["skip_empty"]))
        else:
            _require(s, f"{d}_hf_id")
            rows = _hf(s, f"{d}_", f"{d}_hf_split", f"{d}_fields")
        pools[d] = [replace(r, id=f"{d}:{r.id}", domain=d) for r in rows]
    n_queries = check_size("n_queries", s["n_queries"])
    cap_ = _optional_size(s, "max_per_domain")
    rng = random.Random(s["seed"])
    target_rows = pools[target]
    if len(target_rows) <= n_queries:
        raise DataError(f"task finance_medical: the {target} data has {len(target_rows)} rows, "
                        f"not enough for task.n_queries={n_queries} queries plus a training pool")
    q_idx = set(rng.sample(range(len(target_rows)), n_queries))
    queries = [r for i, r in enumerate(target_rows) if i in q_idx]
    pools[target] = [r for i, r in enumerate(target_rows) if i not in q_idx]
    train = [replace(r, label=int(d == target)) for d in DOMAINS for r in _sample(pools[d], cap_, rng)]
    return Task(name="finance_medical", train=train, queries=queries,
                labels=np.array([r.label for r in train]), positive=POSITIVE["finance_medical"])


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


def _build_brain_rot(s: Mapping[str, Any]) -> Task:
    if s["source"] == "synthetic":
        return _from_synthetic("brain_rot", make_brain_rot(
            n_train=s["n_train"], n_queries=s["n_queries"], junk_ratio=s["junk_ratio"],
            n_heldout=s["n_heldout"], seed=s["seed"]))
    if s["label_rule"] not in LABEL_RULES:
        raise allowed("task.label_rule", s["label_rule"], LABEL_RULES)
    if s["source"] == "local":
        _require(s, "train_path")
        pool = load_records(s["train_path"], fields=s["fields"], skip_empty=bool(s["skip_empty"]))
    else:
        _require(s, "hf_id")
        pool = _hf(s, "", "hf_split", "fields")
    if s["label_rule"] == "m1":
        pool = m1_labels(pool, check_size("m1_high_min_tokens", s["m1_high_min_tokens"]),
                         check_size("m1_junk_max_tokens", s["m1_junk_max_tokens"], 0))
    else:
        missing = next((r for r in pool if r.label is None), None)
        if missing is not None:
            raise DataError(f"task brain_rot: label_rule=m2 reads each row's label (1 = high quality), "
                            f"but row {missing.id!r} has none; map it with task.fields.label")
    rng = random.Random(s["seed"])
    n_q, n_h = check_size("n_queries", s["n_queries"]), check_size("n_heldout", s["n_heldout"])
    high = [i for i, r in enumerate(pool) if r.label == 1]
    junk = [i for i, r in enumerate(pool) if r.label == 0]
    n_q_pool = 0 if s["queries_path"] else n_q
    if len(high) < n_q_pool + n_h + 1 or len(junk) < n_h + 1:
        raise DataError(f"task brain_rot: {len(high)} high-quality and {len(junk)} junk rows after labelling; "
                        f"need more than {n_q_pool + n_h} and {n_h} (lower task.n_queries / task.n_heldout)")
    rng.shuffle(high)
    rng.shuffle(junk)
    taken_q, taken_h, taken_j = high[:n_q_pool], high[n_q_pool:n_q_pool + n_h], junk[:n_h]
    used = set(taken_q) | set(taken_h) | set(taken_j)
    if s["queries_path"]:
        queries = load_records(s["queries_path"], fields=s["fields"], skip_empty=bool(s["skip_empty"]))
    else:
        queries = [pool[i] for i in sorted(taken_q)]
    train = _sample([r for i, r in enumerate(pool) if i not in used], _optional_size(s, "max_train"), rng)
    heldout = {"high": [pool[i] for i in sorted(taken_h)], "junk": [pool[i] for i in sorted(taken_j)]}
    return Task(name="brain_rot", train=train, queries=queries, labels=np.array([r.label for r in train]),
                heldout=heldout, positive=POSITIVE["brain_rot"])


BUILDERS: dict[str, Callable[[Mapping[str, Any]], Task]] = {
    "howdy": _build_howdy,
    "finance_medical": _build_finance_medical,
    "brain_rot": _build_brain_rot,
}


def build_task(cfg: Any) -> Task:
    """Build the task a ``task`` config node describes.

    Args:
        cfg: The ``task`` node (``DictConfig`` or dict) with ``name``, ``source`` and the task's settings.

    Raises:
        ConfigError: unknown name / source / setting, or a setting missing for the source.
        DataError: bad or insufficient data.
    """
    s = _settings(cfg)
    return BUILDERS[s["name"]](s)
