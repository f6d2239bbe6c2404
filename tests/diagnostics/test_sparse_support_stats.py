"""sparse_support's statistics from the support's entries equal the plain dense computation."""

from __future__ import annotations

import torch

from rise_exp.diagnostics.sparse_support import GATHER_SLICE, all_stats, sample_tokens, support_stats
from rise_exp.methods.rise.head import RiseHead
from rise_exp.methods.rise.support import select_support


def plain_stats(head: RiseHead, h: torch.Tensor, y: torch.Tensor, cfg) -> dict[str, torch.Tensor]:
    """Every quantity from dense [n, V] residuals, as written in the diagnostic's definition."""
    z = head.logits(h)
    dense = select_support(z, y, cfg.replace(full_support=True)).dense(head.vocab_size)
    sup = select_support(z, y, cfg)
    sparse = sup.dense(head.vocab_size)
    on = torch.zeros_like(dense, dtype=torch.bool)
    for i in range(len(y)):
        on[i, sup.index[i][sup.mask[i]]] = True
    w = head.weight.double()
    energy = dense.square().sum(1)

    def cos(a, b):
        den = a.norm(dim=1) * b.norm(dim=1)
        return torch.where(den > 0, (a * b).sum(1) / torch.where(den > 0, den, torch.ones_like(den)), 0.0)

    return {
        "energy": energy,
        "kept": (dense.square() * on).sum(1) / energy,
        "cos_r": cos(sparse, dense),
        "cos_gh": cos(sparse @ w, dense @ w),
        "size": sup.mask.sum(1).double(),
    }


def test_support_statistics_equal_the_dense_computation(diagnostic_inputs) -> None:
    inp = diagnostic_inputs("sparse_support")
    h, y = sample_tokens(inp, 3 * GATHER_SLICE + 7, seed=1)  # several gather slices, one ragged
    head = RiseHead.from_model(inp.model, inp.rise.replace(check_logits=False))
    cfgs = {(rho, k): inp.rise.replace(tau=0.7, rho=rho, topk=k) for rho in (1.0, 0.92) for k in (1, 5, 40)}
    together = all_stats(head, h, y, inp.rise.replace(tau=0.7), (1.0, 0.92), [1, 5, 40])
    for key, cfg in cfgs.items():
        want = plain_stats(head, h, y, cfg)
        for got in (support_stats(head, h, y, cfg), together[key]):
            assert got.keys() == want.keys()
            for name in want:
                torch.testing.assert_close(got[name], want[name], rtol=1e-10, atol=1e-12, msg=f"{key} {name}")
