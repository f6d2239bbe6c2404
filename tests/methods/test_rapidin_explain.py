"""RapidIn on a LoRA adapter: per-token gradient shares sum to the stored score, and a row token's share equals
a direct computation (that token's own loss gradient, layer-normalised by the row's, compressed)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rise_exp.core.errors import DataError
from rise_exp.data.encoding import collate
from rise_exp.methods.base import MethodContext
from rise_exp.methods.common import encode_all
from rise_exp.methods.rapidin.method import RapidIn
from rise_exp.training.losses import next_token_nll

peft = pytest.importorskip("peft")


@pytest.fixture
def lora_ctx(tiny_lm, word_tokenizer, tmp_path):
    model = tiny_lm(len(word_tokenizer))
    cfg = peft.LoraConfig(r=2, target_modules=["dense", "query_key_value"], task_type="CAUSAL_LM")
    adapted = peft.get_peft_model(model, cfg).get_base_model()
    torch.manual_seed(1)
    for n, p in adapted.named_parameters():  # a trained-looking adapter: B != 0
        if "lora_B" in n:
            p.data.normal_(0, 0.2)
    return MethodContext(
        model=adapted.eval(), tokenizer=word_tokenizer, work_dir=tmp_path, max_length=32, mask_prompt=True, seed=7
    )


@pytest.mark.parametrize("over", [{}, {"ensemble": 2, "loss_reduction": "sum"}], ids=["single", "ensemble-sum"])
def test_token_shares_sum_to_the_stored_score(lora_ctx, make_records, over):
    train, queries = make_records(8, seed=0), make_records(2, seed=1)
    m = RapidIn({"lora": True, "k": 512, **over}, lora_ctx)
    m.build(train)
    assert m.explain_unavailable() is None
    stored = m.score(queries)
    rows = [[0, 3, 5], [5, 1]]
    for qi, line in enumerate(m.explain(queries, rows, pool=train)):
        for j, pair in enumerate(line):
            s = stored[qi, rows[qi][j]]
            assert pair.explained == pytest.approx(s, rel=1e-4, abs=1e-5)
            assert pair.row.total == pytest.approx(s, rel=1e-4, abs=1e-5)
            assert pair.query.total == pytest.approx(s, rel=1e-4, abs=1e-5)


def test_row_shares_equal_per_token_gradients_computed_directly(lora_ctx, make_records):
    train, queries = make_records(4, seed=0), make_records(1, seed=1)
    m = RapidIn({"lora": True, "k": 512}, lora_ctx)
    m.build(train)
    (pair,) = m.explain(queries, [[2]], pool=train)[0]
    model, params = lora_ctx.model, m._params

    def grads_of(row, which=None):
        batch = collate([row], 0)
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        nll = next_token_nll(logits, batch["input_ids"])[0] * batch["target_mask"][0, 1:]
        n = batch["target_mask"][0, 1:].sum()
        loss = nll.sum() / n if which is None else nll[which - 1] / n
        return torch.autograd.grad(loss, params)

    for p in params:
        p.requires_grad_(True)
    row = encode_all([train[2]], lora_ctx)[0]
    norms = [g.norm() for g in grads_of(row)]
    q_vec = torch.as_tensor(m.query_vectors(queries)[0])
    for t in np.flatnonzero(row.target_mask):
        flat = torch.cat([(g / n).reshape(-1) for g, n in zip(grads_of(row, int(t)), norms)])
        direct = float(m._compress(flat[None])[0] @ q_vec)
        assert pair.row.shares[t] == pytest.approx(direct, rel=1e-4, abs=1e-6)
    assert [s is None for s in pair.row.shares] == (~row.target_mask).tolist()


def test_rapidin_on_every_parameter_says_it_has_no_token_shares(tiny_lm, word_tokenizer, tmp_path):
    ctx = MethodContext(model=tiny_lm(len(word_tokenizer)), tokenizer=word_tokenizer, work_dir=tmp_path)
    m = RapidIn({"k": 64}, ctx)
    assert "method.lora=true" in m.explain_unavailable()
    with pytest.raises(NotImplementedError, match="every parameter"):
        m.explain([], [])


def test_rows_are_explained_from_the_index_alone(lora_ctx, make_records):
    """The index keeps each row's tokens (a small pool), so no pool is needed: the same shares as from the pool."""
    train, queries = make_records(6, seed=0), make_records(2, seed=1)
    m = RapidIn({"lora": True, "k": 256}, lora_ctx)
    m.build(train)
    assert m.require_index().stores_tokens
    rows = [[1, 4], [0]]
    from_pool, from_index = m.explain(queries, rows, pool=train), m.explain(queries, rows)
    for a_line, b_line in zip(from_pool, from_index):
        for a, b in zip(a_line, b_line):
            assert a.row.pieces == b.row.pieces
            np.testing.assert_allclose(
                [s or 0.0 for s in a.row.shares], [s or 0.0 for s in b.row.shares], rtol=1e-6, atol=1e-9
            )


def test_an_index_without_tokens_names_the_setting_when_no_pool_is_given(lora_ctx, make_records):
    train, queries = make_records(4, seed=0), make_records(1, seed=1)
    m = RapidIn({"lora": True, "k": 256, "store_tokens": False}, lora_ctx)
    m.build(train)
    assert not m.require_index().stores_tokens
    with pytest.raises(DataError, match=r"stores no row tokens \(method.store_tokens=false\)"):
        m.explain(queries, [[0]])
    assert m.explain(queries, [[0]], pool=train)[0][0].explained == pytest.approx(m.score(queries)[0, 0], rel=1e-4)
