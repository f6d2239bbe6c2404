"""What a model is, for cache keys and index manifests: identified by its weights, not by its name.

- A local directory (``model.source: local``, or any ``hub_id`` that is an existing directory): a
  content hash of its model files (weights ``*.safetensors`` / ``*.bin`` / ``*.gguf`` / ``*.pt``, and the
  config and tokenizer files next to them). Each file's sha256 is computed once and remembered in
  ``<cache_dir>/identity/file-sha256.json`` under its path, size, modification and change times and
  inode, so weights replaced in place (even with ``touch -r``) are hashed again and give another identity.
- A hub model: the commit its revision resolves to in the local Hugging Face cache (offline); when it
  does not resolve, the revision string, and the identity says ``(unresolved revision)``.
- An embedded model: its config hash and the hash of the text its tokenizer was trained on (the name
  of its cache directory).

The finetune cache key and the index manifest are built on :func:`identify_model`, so a number is
never served from a cache entry of other weights.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

from rise_exp.core.hashing import file_sha256
from rise_exp.core.locks import cache_lock
from rise_exp.core.sealed import stamp

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt", ".pth")
#: Files that make up a model directory (weights, config, tokenizer).
MODEL_SUFFIXES = (*WEIGHT_SUFFIXES, ".json", ".model", ".txt", ".tiktoken")
HASH_CACHE = Path("identity") / "file-sha256.json"
_COMMIT = re.compile(r"^[0-9a-f]{40}$")


def model_files(root: Path) -> list[Path]:
    """The model files under ``root`` (recursive, hidden files and directories skipped), sorted."""
    root = Path(root)
    out = []
    for path in root.rglob("*"):
        rel = path.relative_to(root)
        if any(part.startswith(".") for part in rel.parts) or not path.is_file():
            continue
        if path.suffix in MODEL_SUFFIXES:
            out.append(path)
    return sorted(out)


def files_sha256(files: list[Path], cache_file: Path | None) -> dict[Path, str]:
    """sha256 of each file, from ``cache_file`` when its (path, size, mtime, ctime, inode) stamp is unchanged.

    ``ctime`` is set by the kernel on every write, rename or ``touch``: weights replaced in place with their
    size and modification time restored (``touch -r``) still get a new stamp, so they are hashed again."""
    cache: dict[str, Any] = {}
    if cache_file is not None and cache_file.is_file():
        try:
            cache = dict(json.loads(cache_file.read_text()))
        except (ValueError, TypeError):
            cache = {}  # a damaged cache is only a cache: hash again
    out, changed = {}, False
    for path in files:
        key, now = str(path.resolve()), stamp(path)
        entry = cache.get(key)
        if isinstance(entry, dict) and entry.get("stamp") == now and isinstance(entry.get("sha256"), str):
            out[path] = entry["sha256"]
            continue
        out[path] = file_sha256(path)
        cache[key] = {"stamp": now, "sha256": out[path]}
        changed = True
    if changed and cache_file is not None:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        with cache_lock(cache_file, "the file hash cache"):
            tmp = cache_file.with_name(f"{cache_file.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(cache, indent=0, sort_keys=True))
            os.replace(tmp, cache_file)
    return out


def directory_identity(root: Path, cache_file: Path | None = None) -> str:
    """``local:<dir name>:sha256:<16 hex>`` over the names and contents of the model files in ``root``."""
    root = Path(root)
    files = model_files(root)
    sums = files_sha256(files, cache_file)
    sha = hashlib.sha256()
    for path in files:
        sha.update(f"{path.relative_to(root).as_posix()}\0{sums[path]}\n".encode())
    return f"local:{root.name}:sha256:{sha.hexdigest()[:16]}"


def hub_identity(repo_id: str, revision: str | None, hub_cache: Path | None = None) -> str:
    """``hub:<id>@<commit>``, resolved offline from the Hugging Face cache when possible."""
    rev = revision or "main"
    if _COMMIT.match(rev):
        return f"hub:{repo_id}@{rev}"
    try:
        from huggingface_hub import snapshot_download

        snapshot = snapshot_download(repo_id, revision=rev, cache_dir=hub_cache, local_files_only=True)
        commit = Path(str(snapshot)).name
        if _COMMIT.match(commit):
            return f"hub:{repo_id}@{commit}"
    except Exception:  # not in the cache (or no huggingface_hub): fall back to the revision string
        pass
    return f"hub:{repo_id}@{rev} (unresolved revision)"


def identify_model(spec: Any, source: str | os.PathLike, cache_dir: Path) -> str:
    """The identity of a run's starting weights (see the module notes).

    Args:
        spec: The :class:`~rise_exp.config.model.ModelConfig`.
        source: What the weights were loaded from (an embedded model's cache directory, a local
            directory, or a hub id), as returned by ``models.load_base_model``.
        cache_dir: ``paths.cache_dir`` (holds the file hash cache).
    """
    if spec.source == "embedded":
        base = f"embedded:{Path(source).name}"
    elif Path(source).is_dir():  # a local directory, or a GGUF file converted into one
        base = directory_identity(Path(source), Path(cache_dir) / HASH_CACHE)
    else:
        base = hub_identity(str(source), spec.revision)
    if getattr(spec, "adapter", None):
        base += "+adapter:" + directory_identity(Path(spec.adapter), Path(cache_dir) / HASH_CACHE)
    return base
