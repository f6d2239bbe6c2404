"""TrackStar on a LoRA-finetuned model as a run serves it (the adapter injected, every weight frozen):
``method.modules=lora_`` collects the adapter's projected gradients, equal to the direct computation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("bergson")
peft = pytest.importorskip("peft")

from rise_exp.core.errors import ConfigError  # noqa: E402
from rise_exp.methods.common import encode_all, pad_id  # noqa: E402
from rise_exp.methods.trackstar.method import trainable, trunk_linear_modules  # noqa: E402
from tests.methods.test_trackstar import make, reference_vectors, weight_grads  # noqa: E402


def frozen_lora(tiny_lm, vocab: int) -> torch.nn.Module:
    """A tiny GPT-NeoX with a LoRA adapter (non-zero B), frozen like an adapter loaded for attribution."""
    base = tiny_lm(vocab, hidden_size=8, heads=2, intermediate_size=16, layers=1)
    model = peft.get_peft_model(base, peft.LoraConfig(r=2, target_modules=["query_key_value", "dense_h_to_4h"]))
    torch.manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.1)
    model = model.get_base_model().eval()
    model.requires_grad_(False)
    return model


def test_lora_modules_of_a_frozen_adapter_give_the_projected_adapter_gradients(
    tiny_lm, word_tokenizer, make_records, tmp_path
) -> None:
    model = frozen_lora(tiny_lm, len(word_tokenizer))
    train, queries = make_records(8, 0), make_records(3, 1)
    method = make(model, word_tokenizer, tmp_path, modules="lora_", seed=5)
    method.build(train)
    scores = method.score(queries)
    assert not any(p.requires_grad for p in model.parameters())  # the flags are restored
    modules = trunk_linear_modules(model, "lora_")
    assert len(modules) == 4 and all("lora_" in m for m in modules)
    pad = pad_id(word_tokenizer)
    with trainable(model, modules):
        gx = weight_grads(model, encode_all(train, method.ctx), pad, modules)
        gq = weight_grads(model, encode_all(queries, method.ctx), pad, modules)
    moments = [torch.stack([row[j] ** 2 for row in gx]).mean(0) for j in range(len(modules))]
    ref = reference_vectors(gq, modules, moments, 5) @ reference_vectors(gx, modules, moments, 5).T
    np.testing.assert_allclose(scores, ref.numpy(), atol=2e-5)
    assert method.index_bytes == 8 * 4 * 4 * 4 * 4  # 8 rows x 4 LoRA modules x (k x k) float32, k = 4


def test_modules_that_match_nothing_are_one_line(tiny_lm, word_tokenizer, make_records, tmp_path) -> None:
    model = tiny_lm(len(word_tokenizer), hidden_size=8, heads=2, intermediate_size=16, layers=1)
    method = make(model, word_tokenizer, tmp_path, modules="lora_")
    with pytest.raises(ConfigError, match=r"^method.modules='lora_' matches no nn.Linear module"):
        method.build(make_records(4, 0))
