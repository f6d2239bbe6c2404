"""Exactness anchor: identity sketches, tau = 1, full support, no normalisation -> phi_RH is the
autograd gradient of the summed token losses wrt the unembedding W."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from rise_exp.data.encoding import EncodedRow
from rise_exp.methods.rise import RiseConfig, compute_signatures
from tests.helpers import tiny_lm

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
    model = tiny_lm(300, intermediate_size=64, attn="eager")
    if bias:
        head = nn.Linear(32, 300, bias=True)
        nn.init.normal_(head.bias, std=0.5)
        model.set_output_embeddings(head)
        assert model.get_output_embeddings().bias is not None
    return model.double().eval()


def olmo() -> nn.Module:
    return tiny_lm(260, arch="olmo2", intermediate_size=64, kv_heads=2, seed=1, dtype="float64", attn="eager")


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
