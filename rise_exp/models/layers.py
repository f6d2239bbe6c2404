"""The stack of decoder blocks of an HF causal LM (STRIDE steers one; an index build's bar counts them)."""

from __future__ import annotations

from torch import nn

from rise_exp.core.errors import ConfigError


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The model's stack of decoder blocks (GPT-NeoX ``gpt_neox.layers``, OLMo/Llama ``model.layers``, GPT-2 ``h``).

    Raises:
        ConfigError: when the model has no ``ModuleList`` named ``layers``, ``h`` or ``blocks``.
    """
    for name, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and name.rsplit(".", 1)[-1] in ("layers", "h", "blocks"):
            return module
    raise ConfigError(f"cannot find the decoder layers of {type(model).__name__} (no ModuleList named layers/h/blocks)")
