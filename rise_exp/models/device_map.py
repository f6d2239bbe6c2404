"""Layer-wise placement of a model larger than one device (accelerate's big-model inference).

``model.device_map=auto|balanced|balanced_low_0|sequential`` spreads the blocks over the visible GPUs,
then CPU RAM (``model.max_memory``), then disk (``model.offload_folder``). The map is computed here, on
an empty (meta-device) copy of the architecture, so that the unembedding ``W`` (and the input embedding
and final norm it is tied to or fed by) stay resident on the first device: RISE reads ``W`` directly
for every batch (its head and ``M_g = CS_g(W)``), and a disk-offloaded ``W`` would only exist as a
meta tensor outside the layer's own forward.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch


def resident_head_map(
    path_or_id: str | Path,
    *,
    strategy: str,
    max_memory: dict[int | str, str] | None,
    dtype: torch.dtype,
    revision: str | None = None,
    trust_remote_code: bool = False,
) -> dict[str, int | str]:
    """accelerate's device map for ``strategy``, with the embeddings, final norm and LM head on the first
    device that is not ``disk``."""
    from accelerate import infer_auto_device_map, init_empty_weights
    from accelerate.utils import get_balanced_memory
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(str(path_or_id), revision=revision, trust_remote_code=trust_remote_code)
    with init_empty_weights():
        empty = AutoModelForCausalLM.from_config(config, dtype=dtype, trust_remote_code=trust_remote_code)
    no_split = list(getattr(empty, "_no_split_modules", None) or [])
    if strategy != "sequential":
        max_memory = get_balanced_memory(
            empty,
            max_memory=max_memory,
            no_split_module_classes=no_split,
            dtype=dtype,
            low_zero=strategy == "balanced_low_0",
        )
    device_map: dict[str, Any] = infer_auto_device_map(
        empty, max_memory=max_memory, no_split_module_classes=no_split, dtype=dtype
    )
    first = next((d for d in device_map.values() if d != "disk"), "cpu")
    keep = {id(empty.get_output_embeddings()), id(empty.get_input_embeddings())}
    norm = getattr(empty.base_model, "norm", None) or getattr(empty.base_model, "final_layer_norm", None)
    keep |= {id(norm)} if norm is not None else set()
    names = [n for n, m in empty.named_modules() if id(m) in keep]
    out = {k: v for k, v in device_map.items() if not any(k == n or k.startswith(n + ".") for n in names)}
    # a parent entry (e.g. "" or "gpt_neox") that covers a kept module is split into its children
    return _split_parents(empty, out, names, first)


def _split_parents(model: torch.nn.Module, device_map: dict[str, Any], keep: list[str], first: Any) -> dict[str, Any]:
    """``device_map`` with every entry that contains a kept module replaced by its children's entries,
    and the kept modules mapped to ``first``."""
    modules = dict(model.named_modules())
    changed = True
    while changed:
        changed = False
        for name, dev in list(device_map.items()):
            if any(n != name and (name == "" or n.startswith(name + ".")) for n in keep):
                del device_map[name]
                prefix = f"{name}." if name else ""
                for child, _ in modules[name].named_children():
                    device_map[prefix + child] = dev
                for pname, _ in modules[name].named_parameters(recurse=False):
                    device_map[prefix + pname] = dev
                changed = True
    for n in keep:
        device_map[n] = first
    return {k: v for k, v in device_map.items() if not any(k != n and k.startswith(n + ".") for n in keep)}
