"""Tied embeddings (SmolLM2): the diagnostics split the tied matrix's gradient into its LM-head part
(``sum_t r_t h_t^T``, what RISE sketches) and its input-embedding part, and full TracIn stays the tied model's."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import torch

from rise_exp.data.encoding import collate
from rise_exp.diagnostics.gradients import EMBEDDINGS, HEAD, example_gradients, is_tied, parameter_groups, untied_head
from rise_exp.diagnostics.head_vs_full import gradient_kernels
from rise_exp.diagnostics.kernels import exact_scores
from rise_exp.methods.rise import RiseConfig
from rise_exp.training.losses import batch_loss
from tests.diagnostics.test_kernels import VOCAB, rows
from tests.helpers import tiny_lm

CFG = RiseConfig(chunk_len=16, chunk_overlap=4, tau=0.3, topk=20, rho=0.9)
TIED = f"{EMBEDDINGS} + {HEAD} (tied)"


def tied_llama() -> torch.nn.Module:
    model = tiny_lm(
        VOCAB, arch="llama", hidden_size=16, heads=2, intermediate_size=32, max_position=64, dtype="float64"
    )
    model.lm_head.weight = model.model.embed_tokens.weight
    return model


def full_gradient(model: torch.nn.Module, row) -> torch.Tensor:
    """The tied model's whole gradient (each shared parameter once), by plain autograd."""
    model.zero_grad()
    loss, _ = batch_loss(model, collate([row], 0))
    loss.sum().backward()
    return torch.cat([p.grad.reshape(-1) for p in model.parameters()])


def test_untied_head_keeps_the_function_and_restores_the_tie() -> None:
    model = tied_llama()
    ids = torch.tensor([[3, 7, 11, 2]])
    before = model(ids).logits
    with untied_head(model) as tied:
        assert tied and not is_tied(model)
        assert set(parameter_groups(model)) >= {EMBEDDINGS, HEAD} and TIED not in parameter_groups(model)
        torch.testing.assert_close(model(ids).logits, before, rtol=0, atol=0)
    assert is_tied(model) and TIED in parameter_groups(model)


def test_the_two_parts_sum_to_the_tied_gradient_and_the_head_part_is_the_exact_kernel() -> None:
    model = tied_llama()
    q, x = rows(2, 0), rows(5, 1)
    tied = [g[TIED] for g in example_gradients(model, x, 0, parameter_groups(model))]
    with untied_head(model):
        groups = parameter_groups(model)
        gx = list(example_gradients(model, x, 0, groups))
        gq = list(example_gradients(model, q, 0, groups))
    for g, t in zip(gx, tied, strict=True):
        torch.testing.assert_close(g[HEAD] + g[EMBEDDINGS], t, rtol=1e-5, atol=1e-6 * float(t.abs().max()))  # float32
    raw, _ = exact_scores(model, 0, q, x, CFG)
    head = (torch.stack([g[HEAD] for g in gq]) @ torch.stack([g[HEAD] for g in gx]).T).numpy()
    np.testing.assert_allclose(head, raw, rtol=1e-4, atol=1e-6 * np.abs(raw).max())


def test_head_vs_full_kernels_of_a_tied_model() -> None:
    model = tied_llama()
    q, x = rows(2, 2), rows(4, 3)
    k = gradient_kernels(SimpleNamespace(model=model, pad_id=0), q, x)
    fq = torch.stack([full_gradient(model, r) for r in q]).double()
    fx = torch.stack([full_gradient(model, r) for r in x]).double()
    full = (fq @ fx.T).numpy()
    np.testing.assert_allclose(k["full"], full, rtol=1e-4, atol=1e-6 * np.abs(full).max())
    cos = full / np.outer(fq.norm(dim=1).numpy(), fx.norm(dim=1).numpy())
    np.testing.assert_allclose(k["full_cos"], cos, rtol=1e-4, atol=1e-6)
    raw, _ = exact_scores(model, 0, q, x, CFG)
    np.testing.assert_allclose(k["head"], raw, rtol=1e-4, atol=1e-6 * np.abs(raw).max())
    assert not np.allclose(k["full"], k["head"] + k["trunk"])  # the cross terms of the tied matrix
    assert is_tied(model)
