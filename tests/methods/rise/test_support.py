"""Support selection: the fast path equals a plain torch.topk reference; the rule on crafted logits."""

from __future__ import annotations

import math

import pytest
import torch

from rise_exp.core.errors import DataError
from rise_exp.methods.rise import RiseConfig, exact_topk, select_support


def reference_residual(z: torch.Tensor, y: torch.Tensor, cfg: RiseConfig) -> torch.Tensor:
    """One token at a time with torch.topk and Python loops: dense float64 residuals [n, V]."""
    n, vocab = z.shape
    out = torch.zeros((n, vocab), dtype=torch.float64)
    k = min(cfg.topk, vocab)
    for i in range(n):
        s = z[i].double() / cfg.tau
        vals, idx = torch.topk(s, k)
        idx, vals = idx.tolist(), vals.tolist()
        gt = int(y[i])
        if gt not in idx:
            idx[-1], vals[-1] = gt, float(s[gt])
        m = max(vals)
        p = [math.exp(v - m) for v in vals]
        total = sum(p)
        cut, cum = k, 0.0
        for j in range(k):
            cum += p[j] / total
            if cum >= cfg.rho:
                cut = j + 1
                break
        cut = max(cut, min(cfg.min_keep, k))
        keep = {idx[j]: p[j] for j in range(cut)}
        keep[gt] = p[idx.index(gt)]
        norm = sum(keep.values())
        for v, pv in keep.items():
            out[i, v] = pv / norm
        out[i, gt] -= 1.0
    return out


def distinct_logits(n: int, vocab: int, seed: int, scale: float = 1.0) -> torch.Tensor:
    """Random logits without ties (a permutation of evenly spaced Gaussian quantiles)."""
    g = torch.Generator().manual_seed(seed)
    base = torch.erfinv(torch.linspace(-0.999, 0.999, vocab, dtype=torch.float64)) * scale
    return torch.stack([base[torch.randperm(vocab, generator=g)] for _ in range(n)]).float()


@pytest.mark.parametrize("vocab", [4096, 4099])
def test_exact_topk_equals_torch_topk(vocab: int) -> None:
    z = distinct_logits(40, vocab, seed=vocab)
    for k in (1, 16, 40):
        v, i = exact_topk(z, k)
        rv, ri = torch.topk(z, k, dim=1)
        assert torch.equal(v, rv) and torch.equal(i, ri)


def test_exact_topk_when_the_whole_top_k_shares_one_group() -> None:
    vocab, k, chunk = 4096, 16, 16
    groups = vocab // chunk
    z = distinct_logits(3, vocab, seed=5)
    # the 16 largest values all go to strided group 7: indices 7 + i * groups
    z[:, 7 + torch.arange(chunk) * groups] = 10.0 + torch.arange(chunk, dtype=torch.float32)
    v, i = exact_topk(z, k, chunk=chunk)
    rv, ri = torch.topk(z, k, dim=1)
    assert torch.equal(v, rv) and torch.equal(i, ri)


@pytest.mark.parametrize(
    "tau,rho,min_keep,scale", [(0.1, 0.92, 4, 1.0), (1.0, 0.5, 2, 3.0), (0.5, 1.0, 4, 1.0), (0.1, 0.3, 8, 0.2)]
)
def test_fast_support_equals_reference_on_random_logits(tau: float, rho: float, min_keep: int, scale: float) -> None:
    cfg = RiseConfig(tau=tau, rho=rho, min_keep=min_keep, topk=16)
    z = distinct_logits(48, 4096, seed=1, scale=scale)  # 256 groups >= 2K: the fast top-k path runs
    y = torch.randint(0, 4096, (48,), generator=torch.Generator().manual_seed(2))
    y[:8] = z[:8].argmax(dim=1)  # some ground truths inside the top-K
    sup = select_support(z, y, cfg)
    ref = reference_residual(z, y, cfg)
    dense = sup.dense(4096)
    assert torch.equal(dense != 0, ref != 0)
    assert torch.allclose(dense, ref, rtol=1e-10, atol=1e-12)
    assert torch.equal(sup.mask.sum(1), (ref != 0).sum(1))


def test_small_vocab_path_equals_reference() -> None:
    cfg = RiseConfig(topk=256)
    z = distinct_logits(20, 300, seed=4)
    y = torch.arange(20) * 7
    assert torch.allclose(select_support(z, y, cfg).dense(300), reference_residual(z, y, cfg), atol=1e-12)


def test_rule_on_crafted_logits() -> None:
    # within-top-K mass: p_top3 = (4, 2, 1) / 7 -> cumsum 0.571, 0.857 >= 0.8 -> cutoff 2,
    # while the full softmax (0.4, 0.2, 0.1, ...) would not reach 0.8 inside the top-3.
    probs = torch.tensor([0.4, 0.2, 0.1, 0.1 / 3, 0.1 / 3, 0.1 / 3 - 1e-3, 0.1, 0.1 + 1e-3])
    probs = probs[[0, 1, 7, 2, 6, 3, 4, 5]]  # top-3 = ids 0, 1, 2 (0.4, 0.2, 0.101)
    z = probs.log()[None].float()
    cfg = RiseConfig(tau=1.0, topk=3, rho=0.8, min_keep=1)
    r = select_support(z, torch.tensor([0]), cfg).dense(8)[0]
    assert torch.allclose(r[:2], torch.tensor([0.4 / 0.6 - 1.0, 0.2 / 0.6], dtype=torch.float64), atol=1e-6)
    assert torch.count_nonzero(r[2:]) == 0
    # ground truth outside the top-K replaces the K-th slot and is kept past the cutoff
    r = select_support(z, torch.tensor([5]), cfg).dense(8)[0]
    kept = torch.tensor([0.4, 0.2, float(probs[5])], dtype=torch.float64)
    kept = kept / kept.sum()
    assert torch.allclose(r[[0, 1, 5]], kept - torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64), atol=1e-6)
    assert torch.count_nonzero(r) == 3
    assert abs(float(r.sum())) < 1e-12  # renormalised: sum q = 1, minus the one-hot
    # min_keep: a peaked row reaches rho at once but keeps 3 entries
    z2 = torch.tensor([[8.0, 2.0, 1.0, 0.0, -1.0, -2.0]])
    r2 = select_support(z2, torch.tensor([1]), RiseConfig(tau=1.0, topk=6, rho=0.5, min_keep=3)).dense(6)[0]
    e = torch.tensor([8.0, 2.0, 1.0], dtype=torch.float64).exp()
    assert torch.allclose(r2[:3], e / e.sum() - torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64), atol=1e-9)
    assert torch.count_nonzero(r2[3:]) == 0
    # rho = 1 keeps the whole top-K
    r3 = select_support(z2, torch.tensor([0]), RiseConfig(tau=1.0, topk=4, rho=1.0, min_keep=1)).dense(6)[0]
    assert torch.count_nonzero(r3) == 4


def test_full_support_is_softmax_minus_onehot() -> None:
    z = torch.randn(5, 50)
    y = torch.arange(5)
    r = select_support(z, y, RiseConfig(full_support=True, tau=2.0)).dense(50)
    want = torch.softmax(z.double() / 2.0, dim=1) - torch.nn.functional.one_hot(y, 50).double()
    assert torch.allclose(r, want, atol=1e-12)


def test_bad_target_and_nan_logits() -> None:
    with pytest.raises(DataError, match="outside"):
        select_support(torch.zeros(2, 10), torch.tensor([0, 10]), RiseConfig())
    z = torch.randn(2, 10)
    z[1, 3] = float("nan")
    with pytest.raises(DataError, match="NaN"):
        select_support(z, torch.tensor([0, 1]), RiseConfig())


def test_padded_logit_buffer_gives_the_plain_support() -> None:
    """The head's reused -inf-padded logits buffer (vocabulary not a multiple of the group size, the
    grouped top-K path) selects exactly what the plain logits select, and is reused across slices."""
    from rise_exp.methods.rise import RiseHead

    vocab, dim = 4099, 8
    g = torch.Generator().manual_seed(3)
    weight, bias = torch.randn(vocab, dim, generator=g), torch.randn(vocab, generator=g)
    cfg = RiseConfig(topk=16, tau=0.5)
    head = RiseHead(weight, bias, cfg)
    h = torch.randn(30, dim, generator=g)
    y = torch.randint(0, vocab, (30,), generator=g)
    first = None
    for rows in (30, 11):
        z = head.padded_logits(h[:rows])
        first = first or z.data_ptr()
        assert z.data_ptr() == first and z.shape == (rows, 4112)
        assert torch.isinf(z[:, vocab:]).all() and bool((z[:, vocab:] < 0).all())
        plain = head.logits(h[:rows])
        assert torch.allclose(z[:, :vocab], plain, rtol=0, atol=1e-6)
        ours = select_support(z, y[:rows], cfg, vocab_size=vocab)
        ref = select_support(z[:, :vocab].clone(), y[:rows], cfg)
        assert torch.equal(ours.index, ref.index) and torch.equal(ours.mask, ref.mask)
        assert torch.equal(ours.residual, ref.residual)
        full = select_support(z, y[:rows], cfg.replace(full_support=True), vocab_size=vocab)
        assert full.index.shape == (rows, vocab)
