"""What an index holds, by name: the method, task, data and model of the run that built it.

Runs that answer from an index (``stage=query|valuate|select stage.index=<dir>``) are named by these
(run directory and ``config.yaml``), not by the config groups they were started with. Indexes built
before the names were recorded (``manifest.serving.run``) fall back to their directory's name
(``<data>-<method>-<key>``) and ``index`` for what it cannot tell.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from rise_exp.core.errors import IndexError_

UNKNOWN = "index"


def read_manifest_json(path: str | Path) -> dict[str, Any]:
    """The ``manifest.json`` of the index directory ``path`` as a dict (one-line errors otherwise)."""
    file = Path(path) / "manifest.json"
    try:
        manifest = json.loads(file.read_text())
    except FileNotFoundError:
        raise IndexError_(f"{path}: no manifest.json; not an index directory (stage.index)") from None
    except (OSError, ValueError) as e:
        raise IndexError_(f"{file} is unreadable ({e})") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("method"), dict):
        raise IndexError_(f"{file}: not an index manifest (no method settings)")
    return manifest


def _safe(name: Any) -> str:
    text = re.sub(r"[^A-Za-z0-9._+-]+", "_", str(name or "")).strip("._+-")
    return text or UNKNOWN


def index_run_names(path: str | Path) -> dict[str, str]:
    """``{"method", "task", "data", "model"}`` of the index at ``path``, each a safe path component."""
    manifest = read_manifest_json(path)
    method = _safe(manifest["method"].get("name"))
    run = (manifest.get("serving") or {}).get("run") or {}
    match = re.fullmatch(rf"(.+)-{re.escape(method)}-[0-9a-f]+", Path(path).resolve().name)
    data = run.get("data") or (match.group(1) if match else UNKNOWN)
    return {"method": method, "task": _safe(run.get("task")), "data": _safe(data), "model": _safe(run.get("model"))}


def recorded_config(config: dict[str, Any], path: str | Path) -> dict[str, Any]:
    """A run's resolved ``config`` as it should be recorded when it answered from the index at ``path``:
    ``method`` the index's settings, ``task`` and ``model`` its names (and the weights that serve it)."""
    manifest = read_manifest_json(path)
    names = index_run_names(path)
    serving = {k: v for k, v in (manifest.get("serving") or {}).items() if k.startswith("model_")}
    return {
        **config,
        "method": dict(manifest["method"]),
        "task": {"name": names["task"], "title": names["data"]},
        "model": {"name": names["model"], **serving},
    }
