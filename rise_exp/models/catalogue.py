"""Facts of the model catalogue (``conf/model/``): what a model's architecture settings imply, without loading it."""

from __future__ import annotations

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
