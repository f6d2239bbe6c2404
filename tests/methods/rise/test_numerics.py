"""Numerics of the estimator: the residual is computed stably, per-token sketches are normalised with the
official code's floor, and a float32 and a float64 copy of a near-certain model give the same signatures."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import GPTNeoXForCausalLM

from rise_exp.data.encoding import EncodedRow
from rise_exp.methods.rise import RiseConfig, RiseHead, compute_signatures, l2_normalize, select_support
from rise_exp.methods.rise.trunk import hidden_states

VOCAB = 96


def test_ground_truth_residual_is_minus_the_sum_of_the_others() -> None:
    # p_y = 1 - 3e-20: "p_y - 1" is 0 in float64, the stable residual keeps -3e-20 exactly
    z = torch.tensor([[0.0, -46.0, -47.0, -80.0]], dtype=torch.float64)
    sup = select_support(z, torch.tensor([0]), RiseConfig(tau=1.0, topk=4, rho=1.0, min_keep=4))
    dense = sup.dense(4)[0]
    others = torch.exp(torch.tensor([-46.0, -47.0, -80.0], dtype=torch.float64))
    others = others / (1.0 + others.sum())
    assert float(dense[0]) == pytest.approx(-float(others.sum()), rel=1e-12)
    assert torch.allclose(dense[1:], others, rtol=1e-12, atol=0)
    full = select_support(z, torch.tensor([0]), RiseConfig(tau=1.0, full_support=True)).dense(4)[0]
    assert float(full[0]) == pytest.approx(-float(others.sum()), rel=1e-12)
    assert abs(float(full.sum())) < 1e-30  # sums to zero to rounding of the 1e-20 entries


@pytest.mark.parametrize("full", [False, True])
def test_naive_residual_rounds_like_the_official_code(full: bool) -> None:
    # float32 logits, p_y = 1 - 2.8e-9: rounded to float32 p_y is 1, so "p_y - 1" is exactly 0 (the official
    # rule) while the stable residual keeps -2.8e-9; off the ground truth both are the (rounded) probabilities
    z = torch.tensor([[0.0, -20.0, -21.0, -30.0]], dtype=torch.float32)
    base = {"tau": 1.0, "full_support": full} if full else {"tau": 1.0, "topk": 4, "rho": 1.0, "min_keep": 4}
    naive = select_support(z, torch.tensor([0]), RiseConfig(residual="naive", **base)).dense(4)[0]
    stable = select_support(z, torch.tensor([0]), RiseConfig(**base)).dense(4)[0]
    assert float(naive[0]) == 0.0
    assert float(stable[0]) == pytest.approx(-float(stable[1:].sum()), rel=1e-12) and float(stable[0]) < -2e-9
    assert torch.allclose(naive[1:], stable[1:].float().double(), rtol=0, atol=0)
    # a token the model is unsure of: both rules agree to float32 rounding
    z = torch.tensor([[0.0, -0.5, -1.0, -3.0]], dtype=torch.float32)
    naive = select_support(z, torch.tensor([1]), RiseConfig(residual="naive", **base)).dense(4)[0]
    stable = select_support(z, torch.tensor([1]), RiseConfig(**base)).dense(4)[0]
    assert torch.allclose(naive, stable, rtol=0, atol=1e-7) and not torch.equal(naive, stable)


def test_l2_normalize_floors_the_norm() -> None:
    x = torch.tensor([[3e-10, 4e-10], [3.0, 4.0], [0.0, 0.0]], dtype=torch.float64)
    out = l2_normalize(x, 1e-8)
    assert torch.allclose(out[0], x[0] / 1e-8) and torch.allclose(out[1], x[1] / 5.0)
    assert torch.equal(out[2], x[2])
    assert torch.allclose(l2_normalize(x)[0], torch.tensor([0.6, 0.8], dtype=torch.float64))


@pytest.fixture(scope="module")
def near_certain(tiny_lm) -> tuple[GPTNeoXForCausalLM, list[EncodedRow]]:
    """A float64 tiny GPT-NeoX finetuned on four random rows until it predicts them almost surely."""
    model = tiny_lm(VOCAB, intermediate_size=64, max_position=64, dtype="float64").train()
    g = np.random.default_rng(0)
    rows = [
        EncodedRow(row=i, input_ids=g.integers(0, VOCAB, 16), target_mask=np.r_[False, np.ones(15, bool)])
        for i in range(4)
    ]
    ids = torch.from_numpy(np.stack([r.input_ids for r in rows]))
    opt = torch.optim.Adam(model.parameters(), lr=5e-2)
    for _ in range(40):
        loss = model(input_ids=ids, labels=ids).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 1e-3
    return model.eval(), rows


def test_float32_and_float64_copies_agree_on_a_near_certain_model(near_certain) -> None:
    m64, rows = near_certain
    m32 = GPTNeoXForCausalLM(m64.config)
    m32.load_state_dict({k: v.float() for k, v in m64.state_dict().items()})
    cfg = RiseConfig(kr=64, kh=32, kg=16)
    # the regime of the issue: many tokens' sketched residuals lie below the 1e-8 floor
    ids = torch.from_numpy(np.stack([r.input_ids for r in rows]))
    h = hidden_states(m64, ids, torch.ones_like(ids))[:, :-1].reshape(-1, 32)
    raw = RiseHead.from_model(m64, cfg.replace(normalize_tokens=False)).token_sketches(h, ids[:, 1:].reshape(-1))
    assert float((raw["r"].norm(dim=1) < 1e-8).double().mean()) > 0.2
    a = compute_signatures(m64, 0, rows, cfg).astype(np.float64)
    b = compute_signatures(m32, 0, rows, cfg).astype(np.float64)
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cos.min() >= 0.99999, cos
