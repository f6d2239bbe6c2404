"""Cancellation in the residual sketch: vocabulary ids sharing a bucket and a sign cancel (``sum r = 0``),
and what a float32 sum of them leaves is rounding, which the head must not normalise into a unit vector."""

from __future__ import annotations

import math

import pytest
import torch

from rise_exp.methods.rise import RiseConfig, RiseHead
from rise_exp.methods.rise.sketch import CountSketch, SketchTables, drop_rounding

V = 8
TAU = 0.1


def _head(dtype: torch.dtype, r_buckets: list[int], cfg: RiseConfig) -> RiseHead:
    """A head whose logits are its hidden states (``W = I``), with the r table ``r_buckets`` (all signs +1)."""
    r = CountSketch(torch.tensor(r_buckets), torch.ones(V), cfg.kr)
    h = CountSketch(torch.arange(V) % cfg.kh, torch.ones(V), cfg.kh)
    g = CountSketch(torch.arange(V) % cfg.kg, torch.ones(V), cfg.kg)
    return RiseHead(torch.eye(V, dtype=dtype), None, cfg, SketchTables(h=h, r=r, g=g))


def _near_certain_miss() -> tuple[torch.Tensor, torch.Tensor]:
    """Logits putting p ~ 1 - 1e-6 on id 0, ~1e-6 on id 3 and ~1e-13 on the target, id 5."""
    z = torch.full((1, V), -10.0, dtype=torch.float64)
    z[0, 0], z[0, 3], z[0, 5] = 0.0, TAU * math.log(1e-6), -3.0
    return z, torch.tensor([5])


CFG = RiseConfig(kr=4, kh=4, kg=4, tau=TAU, topk=4, min_keep=4)


def test_two_colliding_ids_keep_the_direction_of_the_exact_sketch() -> None:
    # ids 0 and 5 (the near-certain guess and the target) share bucket 0 with sign +1: r_0 + r_5 = -(p_3 + ...)
    # ~ -1e-6 while |r_0|, |r_5| ~ 1; a float32 sum leaves ~3e-8 of rounding in that 1e-6 (a 1% turn)
    buckets = [0, 2, 3, 1, 2, 0, 3, 2]
    z, y = _near_certain_miss()
    exact = _head(torch.float64, buckets, CFG).token_sketches(z, y)["r"]
    ours = _head(torch.float32, buckets, CFG).token_sketches(z.float(), y)["r"]
    raw = _head(torch.float64, buckets, CFG.replace(normalize_tokens=False)).token_sketches(z, y)["r"]
    assert 1e-6 < float(raw.norm()) < 2e-6
    assert float(exact.norm()) == pytest.approx(1.0)  # above the 1e-8 floor: a unit vector
    assert torch.allclose(ours.double(), exact, rtol=0, atol=1e-6), (ours, exact)


def test_a_bucket_that_cancels_exactly_gives_a_zero_sketch() -> None:
    # every kept id in bucket 0 with sign +1: the exact sketch is 0 (the residual sums to zero);
    # float32 summation used to leave ~6e-8, above the 1e-8 floor, normalised to a unit vector of rounding
    buckets = [0] * V
    z, y = _near_certain_miss()
    for dtype in (torch.float32, torch.float64):
        r = _head(dtype, buckets, CFG).token_sketches(z.to(dtype), y)["r"]
        assert torch.count_nonzero(r) == 0, (dtype, r)
    raw = _head(torch.float32, buckets, CFG.replace(normalize_tokens=False)).token_sketches(z.float(), y)["r"]
    assert torch.count_nonzero(raw) == 0


def test_drop_rounding_keeps_rows_above_the_rounding_bound() -> None:
    x = torch.tensor([[3e-7, 0.0], [1e-5, 0.0], [0.0, 0.0]], dtype=torch.float32)
    out = drop_rounding(x, torch.tensor([2.0, 2.0, 2.0]), terms=1)
    # bound 1 * eps32 * 2 = 2.4e-7: the first row (3e-7) is kept, only rows at or below it are rounding
    assert torch.equal(out, x)
    out = drop_rounding(x, torch.tensor([2.0, 2.0, 2.0]), terms=4)  # bound 9.5e-7
    assert torch.equal(out, torch.tensor([[0.0, 0.0], [1e-5, 0.0], [0.0, 0.0]]))


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_float32_scores_match_a_float64_reference_on_near_certain_tokens(seed: int) -> None:
    """Random peaked heads, few buckets (many collisions): chunk scores within 1e-5 of float64 end to end."""
    g = torch.Generator().manual_seed(seed)
    vocab, dim = 64, 16
    weight = (torch.randn(vocab, dim, generator=g) * 4.0).double()  # float32-exact entries
    weight = weight.float().double()
    hidden = torch.randn(6, 40, dim, generator=g).float().double()
    ids = torch.randint(0, vocab, (6, 40), generator=g)
    # half the targets are the model's own guess (tiny residuals), half the runner-up (|r| ~ 1.4)
    logits = hidden @ weight.T
    guess = logits.argmax(dim=2)
    runner = logits.topk(2, dim=2).indices[..., 1]
    pick = torch.rand(6, 40, generator=g) < 0.5
    ids[:, 1:] = torch.where(pick, guess, runner)[:, :-1]
    mask = torch.ones(6, 40, dtype=torch.bool)
    cfg = RiseConfig(kr=8, kh=8, kg=4, seed=seed)
    sig64, _ = RiseHead(weight, None, cfg).chunk_signatures(hidden, ids, mask)
    sig32, _ = RiseHead(weight.float(), None, cfg).chunk_signatures(hidden.float(), ids, mask)
    s64, s32 = sig64 @ sig64.T, (sig32 @ sig32.T).double()
    assert float((s32 - s64).abs().max()) < 1e-5
