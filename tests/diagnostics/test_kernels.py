"""The references of the diagnostics against plain autograd and against RISE's own identity-sketch path."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rise_exp.data.encoding import EncodedRow
from rise_exp.diagnostics.gradients import HEAD, example_gradients, parameter_groups
from rise_exp.diagnostics.kernels import exact_scores, sketch_scores, unsketched_scores
from rise_exp.diagnostics.ranking import positives_in_top, spearman_rows, top_overlap_rows
from rise_exp.methods.rise import RiseConfig
from tests.helpers import tiny_lm

VOCAB = 120


def neox() -> torch.nn.Module:
    return tiny_lm(VOCAB, hidden_size=16, heads=2, intermediate_size=32, max_position=64, dtype="float64")


def olmo() -> torch.nn.Module:
    return tiny_lm(
        VOCAB, arch="olmo2", hidden_size=16, heads=2, kv_heads=1, intermediate_size=32, max_position=64, seed=1,
        dtype="float64",
    )  # fmt: skip


def rows(n: int, seed: int, longest: int = 40) -> list[EncodedRow]:
    g = np.random.default_rng(seed)
    out = []
    for i in range(n):
        length = int(g.integers(5, longest))
        mask = np.ones(length, dtype=bool)
        mask[: 1 + (i % 2) * 3] = False  # odd rows: a masked prompt
        out.append(EncodedRow(row=i, input_ids=g.integers(0, VOCAB, length), target_mask=mask))
    return out


CFG = RiseConfig(chunk_len=16, chunk_overlap=4, tau=0.3, topk=20, rho=0.9, fusion="rh+gh+rg", lam_rg=0.5)


@pytest.mark.parametrize("make", [neox, olmo], ids=["neox", "olmo2"])
def test_exact_kernel_equals_autograd_inner_products_of_lm_head_gradients(make) -> None:
    model = make()
    q, x = rows(3, 0), rows(7, 1)
    raw, cos = exact_scores(model, 0, q, x, CFG)
    groups = parameter_groups(model)
    gq = torch.stack([g[HEAD] for g in example_gradients(model, q, 0, groups)])
    gx = torch.stack([g[HEAD] for g in example_gradients(model, x, 0, groups)])
    ref = (gq @ gx.T).numpy()
    np.testing.assert_allclose(raw, ref, rtol=1e-5, atol=1e-6 * np.abs(ref).max())
    norms = np.outer(gq.norm(dim=1).numpy(), gx.norm(dim=1).numpy())
    np.testing.assert_allclose(cos, ref / norms, atol=1e-6)


def test_identity_sketch_gives_the_unsketched_scores_and_spearman_one() -> None:
    model = neox()
    q, x = rows(3, 2), rows(9, 3)
    sketched = sketch_scores(model, 0, q, x, CFG.replace(sketch="identity"))
    unsk = unsketched_scores(model, 0, q, x, CFG)
    np.testing.assert_allclose(sketched, unsk, atol=1e-6)  # float32 signatures vs float64 factors
    assert np.allclose(spearman_rows(sketched, unsk), 1.0)
    countsketch = sketch_scores(model, 0, q, x, CFG.replace(kr=8, kh=4, kg=4))
    assert spearman_rows(countsketch, unsk).mean() < 0.999  # a narrow sketch does lose something


def test_parameter_groups_cover_every_parameter_once() -> None:
    model = olmo()
    groups = parameter_groups(model)
    assert list(groups) == ["embeddings", "block 0", "block 1", "final norm", "LM head"]
    names = [n for ns in groups.values() for n in ns]
    assert sorted(names) == sorted(n for n, _ in model.named_parameters())


def test_ranking_helpers_on_known_cases() -> None:
    a = np.array([[1.0, 2.0, 3.0, 4.0], [4.0, 3.0, 2.0, 1.0]])
    np.testing.assert_allclose(spearman_rows(a, a), [1.0, 1.0])
    np.testing.assert_allclose(spearman_rows(a, a[::-1]), [-1.0, -1.0])
    assert np.isnan(spearman_rows(a, np.ones_like(a))).all()
    np.testing.assert_allclose(top_overlap_rows(a, a[::-1], 2), [0.0, 0.0])
    np.testing.assert_allclose(top_overlap_rows(a, a + 1, 3), [1.0, 1.0])
    assert positives_in_top(a, np.array([0, 0, 1, 1]), 2).tolist() == [2, 0]
