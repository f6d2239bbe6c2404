"""Admission before work: does the chosen model x method x finetune x trainer fit the devices?

Runs after the config checks and before any download or load. The peak comes from the memory model
(:mod:`rise_exp.methods.memory_model`, the catalogue's architecture facts) and is compared with the memory
of one device: a GPU's (``torch.cuda``), or host RAM on the CPU (``psutil``). A run that does not fit stops
with one line naming the settings that would make it fit, instead of an out-of-memory error an hour in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rise_exp.config.model import ModelConfig
from rise_exp.core.errors import ConfigError
from rise_exp.methods.memory_model import ACT_PER_TOKEN_LAYER, DTYPE_BYTES, estimate
from rise_exp.models.catalogue import parameter_count
from rise_exp.run.config import RunConfig

GB = 1e9
#: Stages that serve a stored index: their model comes from its manifest, not from ``model.*``.
SERVING_STAGES = ("query", "valuate", "select")
#: Methods that run on a model split with ``model.device_map``: the forward-only ones, and STRIDE (its gradients
#: are those of its own operators, through the frozen, split base: equal scores, tests/models/test_offload.py).
FORWARD_ONLY = ("rise", "zo_inf", "stride")
#: Methods that take gradients of the model's own weights in their own loops (RapidIn, TrackStar) or move the
#: model (kronfluence): one whole model per device, never split.
GRADIENT_METHODS = ("rapidin", "ekfac", "trackstar")
#: ``method.name`` -> its key in the memory model's peaks (RapidIn: see :func:`method_need`).
PEAK_KEYS = {"rise": "RISE", "zo_inf": "ZO-Inf", "stride": "STRIDE", "ekfac": "EK-FAC", "trackstar": "TrackStar"}
#: Fraction of a device's memory a run may plan to use (allocator fragmentation, the runtime, the OS).
USABLE = 0.9


@dataclass(frozen=True)
class Need:
    """Planned peak bytes on one device: ``state`` (weights, gradients, optimiser) and ``work`` (one batch)."""

    what: str
    state: float
    work: float

    @property
    def total(self) -> float:
        return self.state + self.work


def device_memory(accelerator: str) -> tuple[str, float]:
    """``(name, bytes)`` of one device of ``accelerator``: the smallest visible GPU, or host RAM."""
    import torch

    if accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available():
        sizes = [torch.cuda.get_device_properties(i).total_memory for i in range(torch.cuda.device_count())]
        return f"{torch.cuda.get_device_name(0)} ({min(sizes) / GB:.0f} GB)", float(min(sizes))
    import psutil

    return "host RAM", float(psutil.virtual_memory().total)


def finetune_need(run: RunConfig) -> Need:
    """A finetune step: weights, gradients and AdamW's two float32 moments (LoRA: the weights alone, frozen),
    and the activations of one batch of ``finetune.max_tokens_per_batch`` tokens kept for backward
    (``trainer.activation_checkpointing``: each block's input, plus one block's activations recomputed), plus
    the batch's logits over the vocabulary with their float32 log-softmax and its gradient (the memory model's
    ``(2 b + 8) x tokens x vocab``: 6.4 GB for SmolLM2 at 8,192 tokens)."""
    m, f = run.model, run.finetune
    p, b, d, n = parameter_count(m), DTYPE_BYTES[m.dtype], int(m.hidden_size or 0), int(m.layers or 0)
    tokens, v = f.max_tokens_per_batch, int(m.vocab_size or 0)
    state = b * p if f.lora else (2 * b + 8) * p
    per_block = ACT_PER_TOKEN_LAYER * b * d * tokens
    work = (b * d * tokens * n + per_block) if run.trainer.activation_checkpointing else per_block * n
    work += (2 * b + 8) * tokens * v
    return Need(f"finetune ({'LoRA' if f.lora else 'full'})", state, float(work))


def method_need(run: RunConfig) -> Need | None:
    """The method's peak from the memory model (None: a method without one, e.g. BM25)."""
    name = run.method.name
    if name not in (*PEAK_KEYS, "rapidin"):
        return None
    e = estimate(run.model, run.data.max_length, **{name: run.method})
    key = PEAK_KEYS.get(name)
    if key is None:  # RapidIn: its configured compress_batch (the larger of the two RapidIn peaks)
        key = max((k for k in e.peaks if k.startswith("RapidIn")), key=lambda k: e.peaks[k])
    return Need(f"method={name}", float(e.weight_bytes), e.peaks[key] - e.weight_bytes)


def _gb(x: float) -> str:
    return f"{x / GB:.1f} GB"


def remedies(run: RunConfig, need: Need, capacity: float) -> list[str]:
    """Settings that would make ``need`` fit in ``capacity`` bytes (most useful first)."""
    out: list[str] = []
    finetune = need.what.startswith("finetune")
    if finetune:
        out.append("finetune=none (index the model as loaded)")
    work = need.work if need.work < capacity / 2 else capacity / 2  # a batch that fits: see the last remedy
    if need.what.startswith("method=") and run.method.name in FORWARD_ONLY:
        if run.model.device_map is None:
            out.append("model.device_map=auto (layers over the GPUs, then CPU RAM, then disk)")
    else:
        shards = math.ceil(need.state / max(capacity - work, 1.0))
        if need.what.startswith("finetune"):
            out.append(f"trainer=fsdp trainer.devices={shards} (or more: weights, gradients and optimiser sharded)")
            if not run.trainer.activation_checkpointing:
                out.append("trainer.activation_checkpointing=true")
    if need.what.startswith("finetune (full"):
        out.append("finetune=lora")
    if need.work >= capacity / 2 or run.method.name in ("rapidin", "ekfac", "trackstar"):
        out.append(f"a smaller batch ({_batch_setting(run, need)})")
    out.append("a smaller model (model=pythia-1b, ...)")
    return out


def _batch_setting(run: RunConfig, need: Need) -> str:
    if need.what.startswith("finetune"):
        return f"finetune.max_tokens_per_batch={max(1, run.finetune.max_tokens_per_batch // 4)}"
    if run.method.name == "rapidin":
        return "method.compress_batch=1"
    if run.method.name == "rise":
        return f"method.index.batch_tokens={max(1, run.method.index.batch_tokens // 4)}"
    if run.method.name == "ekfac":
        return "method.factor_batch=1 method.train_batch=1 method.query_batch=1 (or method.query_low_rank=32)"
    if run.method.name == "trackstar":
        return "method.batch_rows=1"
    if hasattr(run.method, "max_tokens"):
        return f"method.max_tokens={max(1, run.method.max_tokens // 4)}"
    return "data.max_length=..."


def needs(run: RunConfig) -> list[Need]:
    """What the run will hold on one device, per phase (a finetune, then the method)."""
    out = [finetune_need(run)] if run.finetune.epochs > 0 else []
    method = method_need(run)
    return out + ([method] if method is not None else [])


def _per_device(run: RunConfig, need: Need) -> Need:
    """``need`` as one device holds it: FSDP shards the state over ``trainer.devices x num_nodes``;
    ``model.device_map`` spreads the weights of forward-only work over GPUs, CPU and disk."""
    if run.trainer.strategy.startswith("fsdp") and need.what.startswith("finetune"):  # Lightning-owned loops
        world = max(1, run.trainer.devices) * run.trainer.num_nodes
        return Need(need.what, need.state / world, need.work)
    if run.model.device_map is not None and need.what.startswith("method=") and run.method.name in FORWARD_ONLY:
        layer = need.state / max(1, run.model.layers or 1)
        return Need(need.what, 2 * layer, need.work)  # at least two blocks resident while the rest stream in
    return need


def refuse_split_gradients(run: RunConfig) -> None:
    """A method of :data:`GRADIENT_METHODS` with ``model.device_map``: refused in one line, before any load.

    RapidIn and TrackStar take gradients of the model's own weights, and accelerate's split keeps an offloaded
    layer's weights as meta tensors outside that layer's forward, so those gradients do not exist; kronfluence
    moves the whole model, which accelerate refuses for an offloaded one (docs/gpus.md)."""
    if run.model.device_map is None or run.stage.name in SERVING_STAGES:
        return
    stage = run.stage  # lds / removal score stage.methods, the closed loop its selectors, on the same model
    names = [run.method.name, *getattr(stage, "methods", ()), *getattr(stage, "selectors", ())]
    name = next((n for n in names if isinstance(n, str) and n in GRADIENT_METHODS), None)
    if name is not None:
        which = f"method={name}" if name == run.method.name else f"{name} (in stage={stage.name}'s methods)"
        raise ConfigError(
            f"model.device_map={run.model.device_map} splits the model for method=rise, zo_inf and stride only; "
            f"{which} needs the gradients of weights that a split offloads; drop model.device_map (admission "
            "then says whether the whole model fits one device), or use only those methods or a smaller model"
        )


def admit(run: RunConfig, capacity: tuple[str, float] | None = None) -> None:
    """Raise a one-line ConfigError when the run would not fit one device (before any model is loaded).

    Args:
        run: The typed run config.
        capacity: ``(device name, bytes)``; default: :func:`device_memory` of ``trainer.accelerator``.
    """
    m: ModelConfig = run.model
    refuse_split_gradients(run)
    if run.stage.name in SERVING_STAGES or not m.has_facts:
        return
    if m.arch not in ("gpt_neox", "olmo2", "olmo3"):
        return  # the memory model counts these architectures' parameters exactly; others are not guessed
    name, cap = capacity or device_memory(run.trainer.accelerator)
    usable = USABLE * cap
    for need in needs(run):
        placed = _per_device(run, need)
        if placed.total > usable:
            fixes = "; ".join(remedies(run, placed, usable))
            raise ConfigError(
                f"model={m.name} ({parameter_count(m) / 1e9:.1f}B parameters, {m.dtype}) does not fit: {need.what} "
                f"needs ~{_gb(placed.total)} on one device, {name} has {_gb(cap)}; to fit, set {fixes}"
            )
