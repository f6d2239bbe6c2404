"""Reading Hydra run dirs: finding them, one run's config/overrides/status/metrics, the per-job table.

A run dir holds ``config.yaml`` (or Hydra's ``.hydra/config.yaml``), optionally ``.hydra/overrides.yaml``,
``status.json`` and ``metrics.json``. A run whose files cannot be parsed is reported as ``failed`` with
the file and the parse problem as its error; it never aborts the report of the other runs.
"""

from __future__ import annotations

import json
import math
import os
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from rise_exp.core.errors import ConfigError, DataError

if TYPE_CHECKING:
    import pandas as pd

NAME_KEYS = ("task", "stage", "model", "method")  # config groups whose ``name`` is a column of its own
SEED_KEY = "seed"
BASE_COLUMNS = ("job", "status", "error", *NAME_KEYS, SEED_KEY)
TRAILING_COLUMNS = ("overrides", "run_dir")
REPORT_DIRNAME = "report"  # the default output folder inside the swept directory
SKIP_DIRS = (".hydra", "wandb", "csv", "lightning_logs", "__pycache__", REPORT_DIRNAME)


def _read_yaml(path: Path) -> Any:
    """Parsed YAML; DataError (without the path: callers name the file) when unreadable or invalid."""
    try:
        return yaml.safe_load(path.read_text())
    except OSError as e:
        raise DataError(f"cannot read the file ({e.strerror or e})") from e
    except yaml.YAMLError as e:
        raise DataError(f"not valid YAML ({' '.join(str(e).split())})") from e


def _read_json(path: Path) -> Any:
    """Parsed JSON; DataError (without the path: callers name the file) when unreadable or invalid."""
    try:
        return json.loads(path.read_text())
    except OSError as e:
        raise DataError(f"cannot read the file ({e.strerror or e})") from e
    except ValueError as e:
        raise DataError(f"not valid JSON ({e})") from e


def _is_run_dir(path: Path) -> bool:
    return (path / "config.yaml").is_file() or (path / ".hydra").is_dir()


def _is_skipped(path: Path) -> bool:
    """Tool folders and report outputs (a ``report/`` folder, or any folder holding a report.json)."""
    name = path.name
    if name.startswith(".") or (name in SKIP_DIRS and name != REPORT_DIRNAME):
        return True
    return (name == REPORT_DIRNAME or (path / "report.json").is_file()) and not _is_run_dir(path)


def _natural_key(text: str) -> list[Any]:
    return [int(tok) if tok.isdigit() else tok for tok in re.split(r"(\d+)", text)]


def find_run_dirs(root: Path) -> list[Path]:
    """Every run dir at or below ``root``; numbered job dirs of a multirun count even when still empty.

    Tool folders (``.hydra``, ``wandb``, ...) and report outputs (``report/``) are not searched, so a sweep
    reads the same after a report was written into it.

    Args:
        root: a run dir, a Hydra multirun dir, or a directory tree holding either.

    Returns:
        The run dirs in natural order (``2`` before ``10``).
    """
    if _is_run_dir(root):
        return [root]
    found: list[Path] = []
    for dirpath, dirnames, _ in os.walk(root):
        here = Path(dirpath)
        is_sweep = (here / "multirun.yaml").is_file()
        keep = []
        for name in dirnames:
            sub = here / name
            if _is_skipped(sub):
                continue
            if _is_run_dir(sub) or (is_sweep and name.isdigit()):
                found.append(sub)
            else:
                keep.append(name)
        dirnames[:] = keep
    return sorted(found, key=lambda p: _natural_key(p.relative_to(root).as_posix()))


def lookup(cfg: Any, dotted: str) -> tuple[bool, Any]:
    """``(found, value)`` of a dotted key (``method.kr``) in nested mappings."""
    node = cfg
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False, None
        node = node[part]
    return True, node


def _parse_override(text: str) -> tuple[str, str] | None:
    """``+method.kr=64`` -> ``("method.kr", "64")``; ``model@x=y`` -> ``("model", "y")``; deletions -> None."""
    if "=" not in text or text.startswith("~"):
        return None
    key, value = text.split("=", 1)
    key = key.lstrip("+").split("@", 1)[0].strip()
    return (key, value.strip()) if key else None


def _flat_metrics(obj: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """Numeric leaves of a metrics dict (nested dicts joined with ``/``); null becomes NaN."""
    out: dict[str, float] = {}
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_flat_metrics(value, prefix=f"{name}/"))
        elif value is None:
            out[name] = math.nan
        elif isinstance(value, (bool, int, float)):
            out[name] = float(value)
    return out


@dataclass
class RunRecord:
    """What one run dir says about itself."""

    job: str
    path: Path
    status: str
    error: str | None
    config: dict[str, Any]
    overrides: list[str]
    metrics: dict[str, float] = field(default_factory=dict)


def _load(path: Path, expect: type | tuple[type, ...], what: str, key: str | None = None) -> Any:
    """Parse a run file (JSON or YAML by suffix) and check its top-level type (and ``key``), else DataError."""
    loaded = (_read_json if path.suffix == ".json" else _read_yaml)(path)
    if not isinstance(loaded, expect) or (key is not None and key not in loaded):
        raise DataError(f"expected {what}" + ("" if isinstance(loaded, expect) else f", got {type(loaded).__name__}"))
    return loaded


def read_run(path: Path, job: str) -> RunRecord:
    """Read one run dir's config, overrides, status and metrics.

    Status rules: ``status.json`` decides when present; a run with only ``metrics.json`` is ok; a run
    with neither is ``incomplete``, as is one that says ok but has no metrics. A file that exists but
    cannot be parsed (or a config without a ``<group>.name``) makes the run ``failed``, its error naming
    the file and the problem; what could be read is kept, so the run still lands in its group.
    """
    problems: list[str] = []

    def attempt(file: Path, expect: type | tuple[type, ...], what: str, key: str | None = None) -> Any:
        try:
            return _load(file, expect, what, key) if file.is_file() else None
        except DataError as e:
            problems.append(f"{file.relative_to(path).as_posix()}: {e}")
            return None

    cfg_path = path / "config.yaml"
    if not cfg_path.is_file():
        cfg_path = path / ".hydra" / "config.yaml"
    config = dict(attempt(cfg_path, Mapping, "a mapping at the top level") or {})
    missing = [key for key in NAME_KEYS if config and not lookup(config, f"{key}.name")[0]]
    problems += [f"{cfg_path.relative_to(path).as_posix()}: missing setting {key}.name" for key in missing]
    overrides = [str(o) for o in attempt(path / ".hydra" / "overrides.yaml", (list, type(None)), "a list") or []]
    metrics_path, status_path = path / "metrics.json", path / "status.json"
    metrics = _flat_metrics(attempt(metrics_path, Mapping, "a JSON object of metrics") or {})
    error: str | None = None
    if (st := attempt(status_path, Mapping, "a JSON object with a 'status' key", "status")) is not None:
        status, error = str(st["status"]), None if st.get("error") is None else str(st["error"])
        if status == "ok" and not metrics_path.is_file():
            status, error = "incomplete", "status.json says ok but metrics.json is missing"
    elif metrics_path.is_file():
        status = "ok"
    else:
        status = "incomplete"
        error = "no status.json and no metrics.json (still running, or killed)"
    if not config and status == "ok":
        status, error = "incomplete", "no config.yaml"
    if problems:
        status, error = "failed", "; ".join(problems)
    return RunRecord(
        job=job, path=path, status=status, error=error, config=config, overrides=overrides, metrics=metrics
    )


def _setting_value(rec: RunRecord, key: str) -> Any:
    """A setting's value for one job: the resolved config first, the override's text otherwise."""
    found, value = lookup(rec.config, key)
    raw = dict(kv for o in rec.overrides if (kv := _parse_override(o)) is not None).get(key)
    if found and isinstance(value, Mapping):  # a config-group choice
        value = value.get("name", raw)
    elif not found:
        try:
            value = None if raw is None else yaml.safe_load(raw)
        except yaml.YAMLError:
            value = raw
    if isinstance(value, (list, dict)):
        value = json.dumps(value, sort_keys=True)
    return value


def _override_keys(records: Sequence[RunRecord]) -> set[str]:
    return {kv[0] for rec in records for o in rec.overrides if (kv := _parse_override(o)) is not None}


def _varied_settings(records: Sequence[RunRecord]) -> dict[str, str]:
    """Override keys (other than seed and the named groups) whose values differ between jobs -> column."""
    keys: list[str] = []
    for rec in records:
        for o in rec.overrides:
            kv = _parse_override(o)
            if kv and kv[0] not in keys and kv[0] != SEED_KEY and kv[0] not in NAME_KEYS:
                keys.append(kv[0])
    # settings a config group (e.g. ablation=kr32) changed without naming them: differing method values
    for rec in records:
        method = rec.config.get("method") if isinstance(rec.config, Mapping) else None
        for k, v in (method if isinstance(method, Mapping) else {}).items():
            key = f"method.{k}"
            if key not in keys and key != f"method.{SEED_KEY}" and not isinstance(v, (Mapping, list)):
                keys.append(key)
    varied = [k for k in keys if len({repr(_setting_value(r, k)) for r in records}) > 1]
    if len({repr(_setting_value(r, "method.name")) for r in records}) > 1:  # keep per-method values only
        varied = [k for k in varied if not k.startswith("method.") or k in _override_keys(records)]
    short = [k.removeprefix("method.") for k in varied]
    columns: dict[str, str] = {}
    for key, name in zip(varied, short):
        clash = name in BASE_COLUMNS or name in TRAILING_COLUMNS or short.count(name) > 1
        columns[key] = key if clash else name
    return columns


def collect_runs(path: str | Path) -> pd.DataFrame:
    """One row per job: job, status, error, task, stage, model, method, seed, varied settings, metrics.

    Varied settings are the override keys whose values differ between jobs, seed excluded; a key
    ``method.X`` becomes column ``X`` unless that name is taken. ``df.attrs`` records ``settings`` and
    ``metrics`` (column lists) and ``sweep`` (the multirun's override list, when known). Runs with
    unparseable files are rows with status ``failed`` (see :func:`read_run`).

    Args:
        path: a run dir, a Hydra multirun dir, or a tree of run dirs.

    Raises:
        DataError: the path does not exist or holds no run dir.
    """
    root = Path(path)
    if not root.is_dir():
        raise DataError(f"report input {root} is not a directory")
    run_dirs = find_run_dirs(root)
    if not run_dirs:
        raise DataError(
            f"no runs found under {root}: no directory with a config.yaml, a .hydra/ folder, "
            f"or a numbered job dir of a multirun"
        )
    records = [read_run(p, p.name if p == root else p.relative_to(root).as_posix()) for p in run_dirs]
    settings = _varied_settings(records)
    metric_names: list[str] = []
    for rec in records:
        metric_names += [m for m in rec.metrics if m not in metric_names]
    taken = set(BASE_COLUMNS) | set(TRAILING_COLUMNS) | set(settings.values())
    metric_cols = {m: (f"metrics.{m}" if m in taken else m) for m in metric_names}

    rows = []
    for rec in records:
        row: dict[str, Any] = {"job": rec.job, "status": rec.status, "error": rec.error}
        for key in NAME_KEYS:
            row[key] = lookup(rec.config, f"{key}.name")[1]
        row[SEED_KEY] = _setting_value(rec, SEED_KEY)
        row.update({col: _setting_value(rec, key) for key, col in settings.items()})
        row.update({metric_cols[m]: rec.metrics.get(m, math.nan) for m in metric_names})
        row["overrides"] = " ".join(rec.overrides)
        row["run_dir"] = str(rec.path)
        rows.append(row)
    import pandas as pd  # here: a run's page reads its run dir without the tables' library

    df = pd.DataFrame(rows, columns=[*BASE_COLUMNS, *settings.values(), *metric_cols.values(), *TRAILING_COLUMNS])
    df.attrs.update(settings=list(settings.values()), metrics=list(metric_cols.values()), sweep=_sweep(root))
    return df


def _sweep(root: Path) -> list[str]:
    """The multirun's sweep overrides from ``multirun.yaml``; a corrupt file only warns."""
    path = root / "multirun.yaml"
    if not path.is_file():
        return []
    try:
        found, task = lookup(_read_yaml(path), "hydra.overrides.task")
    except DataError as e:
        warnings.warn(f"{path}: {e}; the report omits the sweep line", stacklevel=3)
        return []
    return [str(o) for o in task] if found and isinstance(task, list) else []


def check_tasks(df: pd.DataFrame, allow_mixed_tasks: bool = False) -> list[str]:
    """The tasks present; raise when there are several and mixing is not allowed.

    Raises:
        ConfigError: runs of more than one task were found and ``allow_mixed_tasks`` is false.
    """
    counts = df["task"].dropna().value_counts().sort_index()
    if len(counts) > 1 and not allow_mixed_tasks:
        found = ", ".join(f"{t} ({n} runs)" for t, n in counts.items())
        raise ConfigError(
            f"runs of different tasks were found: {found}; report one task at a time or pass --allow-mixed-tasks"
        )
    return [str(t) for t in counts.index]
