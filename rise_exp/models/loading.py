"""Loading any Hugging Face causal LM and its tokenizer: a hub id (pinned by revision), a local directory,
or a PEFT adapter on top of either; the architecture comes from the checkpoint's own config."""

from __future__ import annotations

from pathlib import Path

import torch

from rise_exp.core import sealed
from rise_exp.core.errors import ConfigError

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16, "float64": torch.float64}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def check_sealed(path: str | Path) -> None:
    """Refuse, in one line, a sealed checkpoint directory (a cache entry) whose files changed since it was
    written; unsealed directories (a user's own checkpoint) and hub ids pass."""
    path = Path(path)
    if not (path / sealed.SEAL).is_file():
        return
    issue = sealed.problem(path)
    if issue is not None:
        raise ConfigError(f"the checkpoint {path} is damaged ({issue}); delete it and rerun to rebuild it")


def _is_adapter(path: str | Path) -> bool:
    return (Path(path) / "adapter_config.json").is_file()


def load_pretrained(
    path_or_id: str | Path,
    *,
    revision: str | None = None,
    dtype: str = "float32",
    trust_remote_code: bool = False,
    merge_adapter: bool = False,
    device_map: str | dict[str, int | str] | None = None,
    max_memory: dict[int | str, str] | None = None,
    offload_folder: str | Path | None = None,
    device: str | None = None,
):
    """Load an HF causal LM and its tokenizer; a pad token is set to EOS when missing.

    Weights are read shard by shard (safetensors, memory-mapped) into an empty model built on the meta
    device (``low_cpu_mem_usage``), so no rank holds a second host copy. ``device_map`` (with ``max_memory``
    and ``offload_folder``) splits the model layer-wise over GPUs, CPU RAM and disk (accelerate's big-model
    inference): forward passes then run with the layers where they are; a dict ``device_map`` (an earlier
    model's ``hf_device_map``) is used as it is. ``device`` (without ``device_map``)
    fills the empty model on that device straight from the shards: no host copy of the weights at all.

    A PEFT adapter directory (``adapter_config.json``) loads its base model (``base_model_name_or_path``)
    with the adapter applied: kept as LoRA layers inside the model (the same function as the merged
    weights, and the adapter's parameters stay addressable, e.g. for RapidIn ``lora=true``), or merged
    into the weights with ``merge_adapter``.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    check_sealed(path_or_id)
    if _is_adapter(path_or_id):
        import json

        base = json.loads((Path(path_or_id) / "adapter_config.json").read_text()).get("base_model_name_or_path")
        model, tokenizer = load_pretrained(
            base,
            dtype=dtype,
            trust_remote_code=trust_remote_code,
            device_map=device_map,
            max_memory=max_memory,
            offload_folder=offload_folder,
            device=device,
        )
        if (Path(path_or_id) / "tokenizer_config.json").is_file():
            tokenizer = AutoTokenizer.from_pretrained(str(path_or_id))
        model = apply_adapter(model, path_or_id, merge=merge_adapter)
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        return model, tokenizer
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            str(path_or_id), revision=revision, trust_remote_code=trust_remote_code
        )
        split: dict[str, object] = {}
        if isinstance(device_map, dict):  # an explicit map (another model's hf_device_map): used as it is
            split = {"device_map": device_map, "offload_folder": str(offload_folder) if offload_folder else None}
        elif device_map:
            from rise_exp.models.device_map import resident_head_map

            split = {
                "device_map": resident_head_map(
                    path_or_id,
                    strategy=device_map,
                    max_memory=max_memory,
                    dtype=DTYPES[dtype],
                    revision=revision,
                    trust_remote_code=trust_remote_code,
                ),
                "offload_folder": str(offload_folder) if offload_folder else None,
            }
        elif device is not None:
            split = {"device_map": {"": device}}  # one device: the shards are read straight into its memory
        model = AutoModelForCausalLM.from_pretrained(
            str(path_or_id),
            revision=revision,
            dtype=DTYPES[dtype],
            trust_remote_code=trust_remote_code,
            low_cpu_mem_usage=True,
            **{k: v for k, v in split.items() if v is not None},
        )
    except OSError as e:  # not found / no network
        raise ConfigError(
            f"cannot load model {path_or_id!r} (revision {revision!r}): {_first_line(e)} -- check "
            "model.hub_id, the network / HF_HUB_OFFLINE, or use an embedded model (model=tiny-pythia or "
            "model=tiny-olmo)"
        ) from None
    except (MemoryError, torch.OutOfMemoryError):
        raise
    except Exception as e:  # a damaged or foreign checkpoint: unreadable weights, tokenizer or config
        if not Path(path_or_id).is_dir():
            raise
        raise ConfigError(
            f"cannot load the checkpoint {path_or_id} (damaged or incomplete?): {type(e).__name__}: {_first_line(e)}"
        ) from None
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def apply_adapter(model: torch.nn.Module, adapter: str | Path, *, merge: bool) -> torch.nn.Module:
    """``model`` with the PEFT adapter at ``adapter`` applied (merged into the weights, or as LoRA layers)."""
    try:
        from peft import PeftModel
    except ImportError:
        raise ConfigError(
            f"adapter {adapter}: loading LoRA adapters needs peft (pip install 'rise-exp[lora]')"
        ) from None
    if not _is_adapter(adapter):
        raise ConfigError(f"model.adapter {str(adapter)!r} is not a PEFT adapter directory (no adapter_config.json)")
    peft_model = PeftModel.from_pretrained(model, str(adapter))
    return peft_model.merge_and_unload() if merge else peft_model.get_base_model()
