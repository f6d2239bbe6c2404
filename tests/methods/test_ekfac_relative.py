"""method.relative: EK-FAC's influence over the square root of each training row's self-influence."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("kronfluence")

from rise_exp.methods.common import encode_all, pad_id  # noqa: E402
from rise_exp.methods.ekfac.method import tracked_modules  # noqa: E402
from tests.methods.test_ekfac import (  # noqa: E402
    DAMPING,
    dense_influence,
    fisher_from_factors,
    make,
    module_grads,
    tiny,  # noqa: F401 (the fixture)
)


def test_relative_scores_divide_by_the_dense_self_influence(tiny, word_tokenizer, make_records, tmp_path) -> None:  # noqa: F811
    train, queries = make_records(10, 0), make_records(3, 1)
    method = make(tiny, word_tokenizer, tmp_path, relative=True)
    method.build(train)
    scores = torch.from_numpy(method.score(queries)).double()
    modules = tracked_modules(tiny, "")
    pad = pad_id(word_tokenizer)
    gx = module_grads(tiny, encode_all(train, method.ctx), pad, modules)
    gq = module_grads(tiny, encode_all(queries, method.ctx), pad, modules)
    fisher = fisher_from_factors(method.factors(), "ekfac")
    own = torch.stack([dense_influence([g], [g], fisher, DAMPING)[0, 0] for g in gx])
    ref = dense_influence(gq, gx, fisher, DAMPING) / own.sqrt()[None, :]
    torch.testing.assert_close(scores, ref, rtol=1e-5, atol=1e-5 * ref.abs().max().item())
    stored = list((method.factors_path.parent).glob("self_influence-*.safetensors"))
    assert len(stored) == 1  # computed once, beside the factors
    again = make(tiny, word_tokenizer, tmp_path, relative=True)
    again.build(train)
    torch.testing.assert_close(torch.from_numpy(again.score(queries)).double(), scores)
    plain = make(tiny, word_tokenizer, tmp_path)  # the same factors, not relative
    plain.build(train)
    raw = torch.from_numpy(plain.score(queries)).double()
    torch.testing.assert_close(raw / own.sqrt()[None, :], scores, rtol=1e-5, atol=1e-5 * scores.abs().max().item())
