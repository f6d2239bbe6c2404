"""CountSketch tables: unbiased inner products, fidelity rising with width, seeding, persistence."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from rise_exp.core.errors import ConfigError, IndexError_
from rise_exp.methods.rise import CountSketch, RiseConfig, SketchTables


def test_sketched_inner_product_is_unbiased_over_seeds() -> None:
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(300, generator=g, dtype=torch.float64), torch.randn(300, generator=g, dtype=torch.float64)
    y = y + 0.5 * x  # a clearly non-zero exact inner product
    exact = float(x @ y)
    est = []
    for seed in range(400):
        s = CountSketch.seeded(300, 16, seed).matrix(torch.float64)
        est.append(float((x @ s) @ (y @ s)))
    est = np.asarray(est)
    assert abs(est.mean() - exact) < 4 * est.std() / np.sqrt(len(est))
    assert est.std() > 1.0  # the sketch is not trivially exact at width 16


def test_rank_correlation_rises_with_width() -> None:
    g = torch.Generator().manual_seed(1)
    basis = torch.randn(8, 2000, generator=g)
    cands = torch.randn(300, 8, generator=g) @ basis + 0.5 * torch.randn(300, 2000, generator=g)
    query = basis[0] + basis[1]
    exact = (cands @ query).numpy()
    rho = {}
    for width in (8, 64, 512):
        vals = []
        for seed in range(5):
            s = CountSketch.seeded(2000, width, seed).matrix()
            vals.append(spearmanr((cands @ s) @ (query @ s), exact).statistic)
        rho[width] = float(np.mean(vals))
    assert rho[8] < rho[64] < rho[512]
    assert rho[512] > 0.95


def test_sparse_sketch_equals_dense() -> None:
    cs = CountSketch.seeded(50, 7, 3)
    idx = torch.tensor([[3, 9, 9, 0], [49, 1, 2, 0]])
    val = torch.tensor([[1.0, -2.0, 0.5, 0.0], [0.25, 1.0, -1.0, 0.0]])
    dense = torch.zeros(2, 50).scatter_add_(1, idx, val)
    assert torch.allclose(cs.sparse(idx, val), dense @ cs.matrix())


def test_tables_are_seeded_and_round_trip() -> None:
    cfg = RiseConfig(kr=16, kh=8, kg=4, seed=7)
    a, b = SketchTables.create(cfg, 100, 20), SketchTables.create(cfg, 100, 20)
    c = SketchTables.create(RiseConfig(kr=16, kh=8, kg=4, seed=8), 100, 20)
    assert torch.equal(a.r.buckets, b.r.buckets) and torch.equal(a.h.signs, b.h.signs)
    assert not torch.equal(a.r.buckets, c.r.buckets)
    # the RISE code's stream: CPU generator, buckets then sign bits, seeds h = s, g = s + 1, r = s + 2
    gen = torch.Generator().manual_seed(9)
    assert torch.equal(a.r.buckets, torch.randint(0, 16, (100,), generator=gen))
    state = a.state_dict()
    assert {"h_buckets", "h_signs", "r_buckets", "r_signs", "g_buckets", "g_signs"} <= set(state)
    back = SketchTables.from_state_dict(state)
    for name in ("h", "r", "g"):
        x, y = getattr(a, name), getattr(back, name)
        assert torch.equal(x.buckets, y.buckets) and torch.equal(x.signs, y.signs) and x.out_dim == y.out_dim
    back.check(cfg, 100, 20)
    with pytest.raises(ConfigError, match="sketch table r"):
        back.check(cfg, 101, 20)
    bad = dict(state)
    bad["r_signs"] = torch.zeros_like(bad["r_signs"])
    with pytest.raises(IndexError_, match="signs"):
        SketchTables.from_state_dict(bad)
    with pytest.raises(IndexError_, match="g_signs"):
        SketchTables.from_state_dict({k: v for k, v in state.items() if k != "g_signs"})


def test_identity_tables() -> None:
    t = SketchTables.create(RiseConfig(sketch="identity"), 30, 6)
    assert torch.equal(t.r.matrix(), torch.eye(30)) and torch.equal(t.h.matrix(), torch.eye(6))
    with pytest.raises(ConfigError, match="identity"):
        _ = RiseConfig(sketch="identity").signature_dim
