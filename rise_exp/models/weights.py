"""A run's starting weights: an embedded model (built once), a GGUF file (converted once, see
:mod:`rise_exp.models.gguf`), a hub id or a directory, with ``model.adapter`` merged in when set. From
then on the code path is the same for every model.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from rise_exp.config.model import ModelConfig
from rise_exp.core import sealed
from rise_exp.core.errors import ConfigError
from rise_exp.core.hashing import config_hash
from rise_exp.core.locks import cache_lock
from rise_exp.models.embedded import prepare_embedded
from rise_exp.models.identity import identify_model
from rise_exp.models.loading import apply_adapter, load_pretrained

log = logging.getLogger(__name__)


def resolve_weights(spec: ModelConfig, texts: Sequence[str], cache_dir: Path) -> tuple[str | Path, str | None]:
    """Where ``from_pretrained`` finds the starting weights: ``(directory or hub id, revision)``.

    Embedded models are built (cached); GGUF files are converted once to a cached float directory.
    """
    if spec.source == "embedded":
        return prepare_embedded(spec, texts, cache_dir), None
    if spec.gguf_file:
        from rise_exp.models.gguf import convert_gguf, gguf_location

        where, identity = gguf_location(spec.source, spec.package or spec.hub_id or "", spec.gguf_file)
        out = Path(cache_dir) / "models" / f"gguf-{spec.name}-{config_hash(identity)}"
        if sealed.problem(out) is not None:
            with cache_lock(out, f"the GGUF conversion {out.name}"):
                convert_gguf(where, spec.gguf_file, out, revision=spec.revision)
        return out, None
    return str(spec.hub_id), spec.revision


def merged_adapter_dir(spec: ModelConfig, path: str | Path, revision: str | None, cache_dir: Path) -> Path:
    """The weights at ``path`` with ``model.adapter`` merged in, saved once as a full checkpoint in the cache.

    A run's starting weights must live in one directory: a LoRA finetune on top records it as its base
    (``base_model_name_or_path``) and an index records it as the model that serves it, so merging only
    in memory would reload later without the adapter.
    """
    out = Path(cache_dir) / "models" / f"merged-{spec.name}-{config_hash(identify_model(spec, path, cache_dir))}"
    if sealed.problem(out) is not None:
        with cache_lock(out, f"the merged checkpoint {out.name}"):
            if not sealed.reusable(out, "the merged checkpoint"):
                log.info("merging adapter %s into %s: a full checkpoint in %s (once)", spec.adapter, path, out)
                model, tokenizer = load_pretrained(
                    path, revision=revision, dtype=spec.dtype, trust_remote_code=spec.trust_remote_code
                )
                model = apply_adapter(model, str(spec.adapter), merge=True)
                out.mkdir(parents=True, exist_ok=True)
                model.save_pretrained(out)
                tokenizer.save_pretrained(out)
                sealed.seal(out, {"built": f"{path} + adapter {spec.adapter}"})
    return out


def start_weights(spec: ModelConfig, texts: Sequence[str], cache_dir: Path) -> tuple[str | Path, str | None]:
    """``(path or hub id, revision)`` of a run's starting weights: :func:`resolve_weights`, with
    ``model.adapter`` merged into a cached checkpoint (:func:`merged_adapter_dir`) when set."""
    path, revision = resolve_weights(spec, texts, cache_dir)
    if spec.adapter:
        return merged_adapter_dir(spec, path, revision, cache_dir), None
    return path, revision


def split_kwargs(spec: ModelConfig, cache_dir: Path) -> dict[str, Any]:
    """``load_pretrained``'s ``device_map`` / ``max_memory`` / ``offload_folder`` (empty: the whole model)."""
    if spec.device_map is None:
        return {}
    folder = spec.offload_folder or Path(cache_dir) / "offload" / spec.name
    return {"device_map": spec.device_map, "max_memory": spec.memory_limits(), "offload_folder": str(folder)}


def load_base_model(
    spec: ModelConfig, texts: Sequence[str], cache_dir: Path, *, split: bool = True, device: str | None = None
):
    """The starting model of a run and its tokenizer (``model.adapter`` merged in when set).

    Args:
        spec: The model settings.
        texts: Task text, used to train an embedded model's tokenizer.
        cache_dir: ``paths.cache_dir``.
        split: Apply ``model.device_map`` (False: the whole model in host memory, for training).
        device: Without a split, read the weights straight into this device's memory (a GPU placement).

    Returns:
        ``(model, tokenizer, source_path)``; ``source_path`` is what ``from_pretrained`` loaded.

    Raises:
        ConfigError: weights that cannot be found or read, or a head RISE cannot use.
    """
    path, revision = start_weights(spec, texts, cache_dir)
    model, tokenizer = load_pretrained(
        path,
        revision=revision,
        dtype=spec.dtype,
        trust_remote_code=spec.trust_remote_code,
        **((split_kwargs(spec, cache_dir) if split else {}) or ({"device": device} if device else {})),
    )
    head = model.get_output_embeddings()
    if head is None or not isinstance(head, torch.nn.Linear):
        raise ConfigError(
            f"model {spec.name!r}: the LM head is not a plain nn.Linear unembedding ({type(head).__name__})"
        )
    return model, tokenizer, path
