"""Admission before work: does the chosen model x method x finetune x trainer fit the devices?

Runs after the config checks and before any download or load. The peak comes from the memory model
(:mod:`rise_exp.methods.memory_model`, the catalogue's architecture facts) and is compared with the memory
of one device: a GPU's (``torch.cuda``), or host RAM on the CPU (``psutil``). A run that does not fit stops
with one line naming the settings that would make it fit, instead of an out-of-memory error an hour in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from rise_exp.config.model import ModelConfig
from rise_exp.config.settings import Settings
from rise_exp.config.stages import ClosedLoopStageConfig, CounterfactualStageConfig
from rise_exp.core.errors import ConfigError
from rise_exp.methods.memory_model import ACT_PER_TOKEN_LAYER, DTYPE_BYTES, ekfac_modules, estimate
from rise_exp.models.catalogue import parameter_count
from rise_exp.run.config import RunConfig
from rise_exp.run.stage_methods import StageMethod, stage_methods

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
    """Planned peak bytes on one device: ``state`` (weights, gradients, optimiser) and ``work`` (one batch), of the
    finetune or of one method the stage builds."""

    what: str
    state: float
    work: float
    method: StageMethod | None = None  # None: a training loop (the finetune, the closed loop's)
    settings: Settings | None = None  # the method's merged settings
    batch: str = ""  # a training loop's smaller-batch setting, as typed

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


def training_need(run: RunConfig, what: str, tokens: int, lora: bool, batch: str) -> Need:
    """A training step on ``tokens`` tokens: weights, gradients and AdamW's two float32 moments (LoRA: the weights
    alone, frozen), and the activations of the batch kept for backward (``trainer.activation_checkpointing``: each
    block's input, plus one block's activations recomputed), plus the batch's logits over the vocabulary with
    their float32 log-softmax and its gradient (the memory model's ``(2 b + 8) x tokens x vocab``: 6.4 GB for
    SmolLM2 at 8,192 tokens). ``batch``: the setting that makes the batch smaller, as typed."""
    m = run.model
    p, b, d, n = parameter_count(m), DTYPE_BYTES[m.dtype], int(m.hidden_size or 0), int(m.layers or 0)
    v = int(m.vocab_size or 0)
    state = b * p if lora else (2 * b + 8) * p
    per_block = ACT_PER_TOKEN_LAYER * b * d * tokens
    work = (b * d * tokens * n + per_block) if run.trainer.activation_checkpointing else per_block * n
    work += (2 * b + 8) * tokens * v
    return Need(what, state, float(work), batch=batch)


def finetune_need(run: RunConfig) -> Need:
    """A finetune step (:func:`training_need`) on ``finetune.max_tokens_per_batch`` tokens."""
    f = run.finetune
    smaller = f"finetune.max_tokens_per_batch={max(1, f.max_tokens_per_batch // 4)}"
    return training_need(run, f"finetune ({'LoRA' if f.lora else 'full'})", f.max_tokens_per_batch, f.lora, smaller)


def continued_training_need(run: RunConfig) -> Need:
    """A step of the closed loop's continued pretraining of a fresh copy (every weight, AdamW) on the packed
    blocks of ``stage.pack.block_len`` tokens that fit ``stage.train.max_tokens_per_batch``."""
    st = run.stage
    assert isinstance(st, ClosedLoopStageConfig)
    block, most = st.pack.block_len, st.train.max_tokens_per_batch
    smaller = f"stage.train.max_tokens_per_batch={max(block, most // 4)}"
    return training_need(run, "continued pretraining (full)", most // block * block, False, smaller)


def method_need(run: RunConfig, planned: StageMethod | None = None) -> Need | None:
    """The peak of one method the stage builds (default: the run's own ``method``) from the memory model, with
    its settings merged as the stage merges them (None: a method without one, e.g. BM25)."""
    planned = planned or StageMethod(run.method.name)
    name = planned.name
    if name not in (*PEAK_KEYS, "rapidin"):
        return None
    cfg = planned.settings(run)
    if name == "ekfac" and not ekfac_modules(run.model, cfg, run.finetune):  # kronfluence would refuse after the load
        lora = " (LoRA layers exist after a LoRA finetune only: finetune=lora)" if "lora" in cfg.modules else ""
        raise ConfigError(
            f"{planned.prefix}.modules={cfg.modules!r} matches no nn.Linear module of model={run.model.name}{lora}"
        )
    e = estimate(run.model, run.data.max_length, finetune=run.finetune, **{name: cfg})  # EK-FAC: the adapter
    key = PEAK_KEYS.get(name)
    if key is None:  # RapidIn: its configured compress_batch (the larger of the two RapidIn peaks)
        key = max((k for k in e.peaks if k.startswith("RapidIn")), key=lambda k: e.peaks[k])
    return Need(planned.label, float(e.weight_bytes), e.peaks[key] - e.weight_bytes, planned, cfg)


def _gb(x: float) -> str:
    return f"{x / GB:.1f} GB"


def _splittable(run: RunConfig) -> bool:
    """Whether ``model.device_map`` would be admitted: no method the stage builds needs the weights' gradients."""
    return not any(m.name in GRADIENT_METHODS for m in stage_methods(run))


def remedies(run: RunConfig, need: Need, capacity: float) -> list[str]:
    """Settings that would make ``need`` fit in ``capacity`` bytes (most useful first), as the user types them."""
    out: list[str] = []
    planned = need.method
    if need.what.startswith("finetune") and not isinstance(run.stage, CounterfactualStageConfig):  # lds retrains
        out.append("finetune=none (index the model as loaded)")
    work = need.work if need.work < capacity / 2 else capacity / 2  # a batch that fits: see the last remedy
    if planned is not None and planned.name in FORWARD_ONLY:
        if run.model.device_map is None and _splittable(run):
            out.append("model.device_map=auto (layers over the GPUs, then CPU RAM, then disk)")
    elif planned is None:
        shards = math.ceil(need.state / max(capacity - work, 1.0))
        out.append(f"trainer=fsdp trainer.devices={shards} (or more: weights, gradients and optimiser sharded)")
        if not run.trainer.activation_checkpointing:
            out.append("trainer.activation_checkpointing=true")
    if need.what.startswith("finetune (full"):
        out.append("finetune=lora")
    if need.work >= capacity / 2 or (planned is not None and planned.name in GRADIENT_METHODS):
        out.append(f"a smaller batch ({_batch_setting(run, need)})")
    if planned is not None and planned.listed_in is not None:  # the stage's list without it, as typed
        rest = [n for n in getattr(run.stage, planned.listed_in.removeprefix("stage.")) if n != planned.name]
        if rest:
            out.append(f"{planned.listed_in}=[{','.join(rest)}] (without {planned.name})")
    out.append("a smaller model (model=pythia-1b, ...)")
    return out


def _batch_setting(run: RunConfig, need: Need) -> str:
    """The batch settings of ``need``'s phase, where the user sets them (``method.*``, or the stage's
    per-method settings, ``++stage.method_overrides.<m>.*`` / ``++stage.methods.<m>.*``: ``++`` adds or replaces)."""
    if need.method is None:
        return need.batch
    name, cfg = need.method.name, need.settings
    p = need.method.prefix if need.method.listed_in is None else f"++{need.method.prefix}"
    if name == "rapidin":
        return f"{p}.compress_batch=1"
    if name == "rise":
        return f"{p}.index.batch_tokens={max(1, cfg.index.batch_tokens // 4)}"
    if name == "ekfac":
        return f"{p}.factor_batch=1 {p}.train_batch=1 {p}.query_batch=1 (or {p}.query_low_rank=32)"
    if name == "trackstar":
        return f"{p}.batch_rows=1"
    if hasattr(cfg, "max_tokens"):
        return f"{p}.max_tokens={max(1, cfg.max_tokens // 4)}"
    return "data.max_length=..."


def needs(run: RunConfig) -> list[Need]:
    """What the run will hold on one device, per phase: a finetune, the closed loop's continued pretraining, then
    each method the stage builds
    (:func:`~rise_exp.run.stage_methods.stage_methods`: the run's ``method``, or ``stage.methods`` of lds and
    removal, or the closed loop's method selectors, each with its stage's settings)."""
    out = [finetune_need(run)] if run.finetune.epochs > 0 else []
    if isinstance(run.stage, ClosedLoopStageConfig):
        out.append(continued_training_need(run))
    methods = (method_need(run, planned) for planned in stage_methods(run))
    return out + [need for need in methods if need is not None]


def _per_device(run: RunConfig, need: Need) -> Need:
    """``need`` as one device holds it: FSDP shards the state over ``trainer.devices x num_nodes``;
    ``model.device_map`` spreads the weights of forward-only work over GPUs, CPU and disk."""
    if run.trainer.strategy.startswith("fsdp") and need.method is None:  # Lightning-owned training loops
        world = max(1, run.trainer.devices) * run.trainer.num_nodes
        return replace(need, state=need.state / world)
    if run.model.device_map is not None and need.method is not None and need.method.name in FORWARD_ONLY:
        layer = need.state / max(1, run.model.layers or 1)
        return replace(need, state=2 * layer)  # at least two blocks resident while the rest stream in
    return need


def refuse_split_gradients(run: RunConfig) -> None:
    """A method of :data:`GRADIENT_METHODS` with ``model.device_map``: refused in one line, before any load.

    RapidIn and TrackStar take gradients of the model's own weights, and accelerate's split keeps an offloaded
    layer's weights as meta tensors outside that layer's forward, so those gradients do not exist; kronfluence
    moves the whole model, which accelerate refuses for an offloaded one (docs/gpus.md)."""
    if run.model.device_map is None or run.stage.name in SERVING_STAGES:
        return
    # lds / removal score stage.methods, the closed loop its selectors, on the same model
    planned = next((m for m in stage_methods(run) if m.name in GRADIENT_METHODS), None)
    if planned is not None:
        raise ConfigError(
            f"model.device_map={run.model.device_map} splits the model for method=rise, zo_inf and stride only; "
            f"{planned.label} needs the gradients of weights that a split offloads; drop model.device_map (admission "
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
    over = [placed for placed in (_per_device(run, need) for need in needs(run)) if placed.total > usable]
    if not over:
        return
    # a training loop first (the finetune runs first), then the largest method: the line names the binding phase
    first, *rest = sorted(over, key=lambda n: (n.method is not None, -n.total))
    also = f" (also over: {', '.join(f'{n.what} ~{_gb(n.total)}' for n in rest)})" if rest else ""
    fixes = "; ".join(remedies(run, first, usable))
    raise ConfigError(
        f"model={m.name} ({parameter_count(m) / 1e9:.1f}B parameters, {m.dtype}) does not fit: {first.what} needs "
        f"~{_gb(first.total)} on one device, {name} has {_gb(cap)}{also}; to fit, set {fixes}"
    )
