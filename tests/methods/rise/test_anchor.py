"""Exactness anchor: identity sketches, tau = 1, full support, no normalisation -> phi_RH is the
autograd gradient of the summed token losses wrt the unembedding W."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM, Olmo2Config, Olmo2ForCausalLM

from rise_exp.data.encoding import EncodedRow
from rise_exp.methods.rise import RiseConfig, compute_signatures

ANCHOR = RiseConfig(
    fusion="rh",
    sketch="identity",
    tau=1.0,
    full_support=True,
    normalize_tokens=False,
    normalize_signature=False,
    chunk_len=64,
)


def neox(bias: bool) -> nn.Module:
    torch.manual_seed(0)
    cfg = GPTNeoXConfig(
        vocab_size=300,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=128,
        attn_implementation="eager",
    )
    model = GPTNeoXForCausalLM(cfg)
    if bias:
        head = nn.Linear(32, 300, bias=True)
        nn.init.normal_(head.bias, std=0.5)
        model.set_output_embeddings(head)
        assert model.get_output_embeddings().bias is not None
    return model.double().eval()


def olmo() -> nn.Module:
    torch.manual_seed(1)
    cfg = Olmo2Config(
        vocab_size=260,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        tie_word_embeddings=False,
        attn_implementation="eager",
    )
    return Olmo2ForCausalLM(cfg).double().eval()


def rows_for(vocab: int) -> list[EncodedRow]:
    g = np.random.default_rng(3)
    out = []
    for i, n in enumerate((23, 17)):  # two different "texts"
        mask = np.ones(n, dtype=bool)
        mask[0] = False
        mask[1:4] = i == 0  # the second row has a masked prompt
        out.append(EncodedRow(row=i, input_ids=g.integers(0, vocab, n), target_mask=mask))
    return out


def autograd_grad(model: nn.Module, row: EncodedRow) -> torch.Tensor:
    w = model.get_output_embeddings().weight
    ids = torch.from_numpy(row.input_ids)[None]
    logits = model(input_ids=ids).logits[0]
    tgt = torch.from_numpy(row.target_mask)
    pos = tgt.nonzero()[:, 0]
    loss = nn.functional.cross_entropy(logits[pos - 1], ids[0, pos], reduction="sum")
    (grad,) = torch.autograd.grad(loss, w)
    return grad


@pytest.mark.parametrize("make", [lambda: neox(False), lambda: neox(True), olmo], ids=["neox", "neox-bias", "olmo2"])
def test_anchor_equals_autograd_lm_head_gradients(make) -> None:
    model = make()
    vocab, dim = model.get_output_embeddings().weight.shape
    rows = rows_for(vocab)
    phi = torch.from_numpy(compute_signatures(model, 0, rows, ANCHOR)).double()
    grads = [autograd_grad(model, r).flatten() for r in rows]
    assert phi.shape == (2, vocab * dim)
    for i in range(2):
        rel = (phi[i] - grads[i]).norm() / grads[i].norm()
        assert rel < 1e-6
    kernel = phi @ phi.T
    exact = torch.stack(grads) @ torch.stack(grads).T
    assert torch.allclose(kernel, exact, rtol=1e-6, atol=0)
    assert abs(float(kernel[0, 1])) > 1e-3 * float(kernel[0, 0])  # a real cross term, not zero
