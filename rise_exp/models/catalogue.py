"""Facts of the model catalogue (``conf/model/``): what a model's architecture settings imply, without loading it."""

from __future__ import annotations

from rise_exp.config.finetune import FinetuneConfig
from rise_exp.config.model import ModelConfig
from rise_exp.core.errors import ConfigError


def parameter_count(m: ModelConfig) -> int:
    """Exact parameter count of a GPT-NeoX (Pythia), OLMo 2 or OLMo 3 model from its architecture facts.

    GPT-NeoX block: fused QKV and output projection with biases, two LayerNorms, a biased 2-layer MLP;
    OLMo 2 / OLMo 3 block (OLMo 3 only adds sliding-window attention, no parameters): Q, K, V, O without
    bias (K and V of width ``kv_heads x head_dim``), Q and K RMSNorms, a SwiGLU MLP (three matrices), two
    RMSNorms. Both: untied input and output embeddings, a final norm.
    """
    if not m.has_facts:
        raise ConfigError(f"model {m.name!r} states no architecture facts (model.layers, ...) to count from")
    d, f, v, n = m.hidden_size, m.intermediate_size or 4 * m.hidden_size, m.vocab_size, m.layers
    if m.arch in ("olmo2", "olmo3"):
        kv = (m.kv_heads or m.heads) * (d // m.heads)
        block = 2 * d * d + 2 * d * kv + 3 * d * f + d + kv + 2 * d
        return n * block + 2 * v * d + d
    block = 4 * d * d + 4 * d + 2 * d * f + f + d + 4 * d
    return n * block + 2 * v * d + 2 * d


def linear_shapes(m: ModelConfig) -> list[tuple[str, int, int, bool]]:
    """``(name, out, in, bias)`` of every ``nn.Linear`` of a GPT-NeoX, OLMo 2 or OLMo 3 model, blocks in order
    and the LM head last (names as in transformers, relative to the model; what EK-FAC and TrackStar track)."""
    if not m.has_facts:
        raise ConfigError(f"model {m.name!r} states no architecture facts (model.layers, ...) to list its layers")
    d, f, v = m.hidden_size, m.intermediate_size or 4 * m.hidden_size, m.vocab_size
    if m.arch in ("olmo2", "olmo3"):
        kv = (m.kv_heads or m.heads) * (d // m.heads)
        block = [("self_attn.q_proj", d, d), ("self_attn.k_proj", kv, d), ("self_attn.v_proj", kv, d)]
        block += [("self_attn.o_proj", d, d), ("mlp.gate_proj", f, d), ("mlp.up_proj", f, d), ("mlp.down_proj", d, f)]
        prefix, bias, head = "model.layers", False, "lm_head"
    else:
        block = [("attention.query_key_value", 3 * d, d), ("attention.dense", d, d)]
        block += [("mlp.dense_h_to_4h", f, d), ("mlp.dense_4h_to_h", d, f)]
        prefix, bias, head = "gpt_neox.layers", True, "lm_head"  # transformers 5 (Pythia files: embed_out)
    out = [(f"{prefix}.{i}.{name}", o, k, bias) for i in range(m.layers) for name, o, k in block]
    return [*out, (head, v, d, False)]


def lora_targeted(name: str, targets: str, head: str = "lm_head") -> bool:
    """Whether peft adapts the ``nn.Linear`` called ``name`` under ``finetune.lora_targets``: ``all-linear`` is
    every one but the LM head; a comma-separated list matches a name equal to an entry or ending in ``.<entry>``."""
    if targets == "all-linear":
        return name != head
    return any(name == t or name.endswith(f".{t}") for t in (t.strip() for t in targets.split(",")) if t)


def adapted_linear_shapes(m: ModelConfig, finetune: FinetuneConfig) -> list[tuple[str, int, int, bool]]:
    """:func:`linear_shapes` of the model a LoRA finetune leaves (an adapter on the base model, not merged).

    Each adapted ``nn.Linear`` (``finetune.lora_targets``) becomes ``<name>.base_layer`` (its own shape), and
    peft's ``<name>.lora_A.default`` (``in -> r``) and ``<name>.lora_B.default`` (``r -> out``) are added, both
    without bias, ``r = finetune.lora_r``. Without a LoRA finetune that trains: :func:`linear_shapes` itself."""
    plain = linear_shapes(m)
    if not (finetune.lora and finetune.epochs > 0):
        return plain
    out: list[tuple[str, int, int, bool]] = []
    for name, s, a, bias in plain:
        if not lora_targeted(name, finetune.lora_targets, head=plain[-1][0]):
            out.append((name, s, a, bias))
            continue
        out.append((f"{name}.base_layer", s, a, bias))
        out.append((f"{name}.lora_A.default", finetune.lora_r, a, False))
        out.append((f"{name}.lora_B.default", s, finetune.lora_r, False))
    return out


def lora_parameter_count(m: ModelConfig, finetune: FinetuneConfig) -> int:
    """Parameters of the LoRA adapter a finetune adds (``r (in + out)`` per adapted layer; 0 without one)."""
    return sum(s * a for name, s, a, _ in adapted_linear_shapes(m, finetune) if ".lora_" in name)
