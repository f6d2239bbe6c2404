"""The trunk memo of the diagnostics: a repeated batch is served from memory, with the same scores."""

from __future__ import annotations

import numpy as np
import torch

from rise_exp.diagnostics.kernels import sketch_scores
from rise_exp.methods.rise import RiseConfig
from rise_exp.methods.rise.trunk import base_model, hidden_states, remembering_hidden_states
from tests.diagnostics.test_kernels import neox, rows

CFG = RiseConfig(chunk_len=16, chunk_overlap=4, tau=0.3, topk=20, rho=0.9, kr=16, kh=8, kg=8, check_logits=False)


def count_trunk_calls(model: torch.nn.Module) -> list[int]:
    calls = [0]
    base_model(model).register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    return calls


def test_sketches_over_seeds_run_the_trunk_once_per_batch_and_score_the_same() -> None:
    model = neox()
    q, x = rows(3, 0), rows(9, 1)
    calls = count_trunk_calls(model)
    plain = [sketch_scores(model, 0, q, x, CFG.replace(seed=s)) for s in (0, 1, 2)]
    per_pass = calls[0] // 3
    calls[0] = 0
    with remembering_hidden_states() as memo:
        remembered = [sketch_scores(model, 0, q, x, CFG.replace(seed=s)) for s in (0, 1, 2)]
    assert calls[0] == per_pass  # the first seed's batches only
    assert memo.hits == 2 * per_pass
    for a, b in zip(plain, remembered, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.allclose(plain[0], plain[1])  # the seeds do differ: the memo keeps the trunk, not the sketch


def test_the_memo_tells_models_and_batches_apart_and_skips_gradient_calls() -> None:
    a, b = neox(), neox()
    torch.manual_seed(5)
    with torch.no_grad():
        for p in b.parameters():
            p.add_(0.1 * torch.randn_like(p))
    ids = torch.tensor([[1, 2, 3, 4]])
    att = torch.ones_like(ids)
    with remembering_hidden_states() as memo, torch.inference_mode():
        ha, hb = hidden_states(a, ids, att), hidden_states(b, ids, att)
        h_other = hidden_states(a, ids + 1, att)
        assert memo.hits == 0 and not torch.equal(ha, hb) and not torch.equal(ha, h_other)
        assert hidden_states(a, ids, att) is ha and memo.hits == 1
    with remembering_hidden_states() as memo:
        hidden_states(a, ids, att)
        hidden_states(a, ids, att)
        assert memo.hits == 0 and not memo.states  # with gradients: never remembered


def test_past_its_limit_the_memo_computes_as_usual() -> None:
    model = neox()
    ids = torch.tensor([[1, 2, 3, 4]])
    with remembering_hidden_states(limit_bytes=16) as memo, torch.inference_mode():
        first = hidden_states(model, ids, torch.ones_like(ids))
        second = hidden_states(model, ids, torch.ones_like(ids))
    assert memo.hits == 0 and memo.held_bytes == 0
    torch.testing.assert_close(first, second, rtol=0, atol=0)
