"""RISE per-token shares: each side sums to the pair's score (the stored one up to fp16 storage rounding), and a
row token's share equals a direct computation from explicit per-token outer products."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rise_exp.config.trainer import TrainerConfig
from rise_exp.core.errors import DataError
from rise_exp.data.encoding import encode_record
from rise_exp.data.records import Record
from rise_exp.methods.base import MethodContext
from rise_exp.methods.rise.head import RiseHead, l2_normalize
from rise_exp.methods.rise.method import RiseMethod
from rise_exp.methods.rise.trunk import hidden_states

CFG = {"name": "rise", "kr": 16, "kh": 16, "kg": 8, "seed": 3, "chunk_len": 12, "chunk_overlap": 4}
CPU = TrainerConfig(accelerator="cpu", devices=1, precision="32-true")
#: fp16 storage rounds each entry of a unit-norm row signature by at most 2^-11 relative, so by Cauchy-Schwarz
#: the stored score differs from the exact one by at most 2^-11 |phi(q)| |phi(x)| = 2^-11; plus float32 noise.
FP16_TOL = 2.0**-11 + 1e-5
FP32_TOL = 1e-5


@pytest.fixture(scope="module")
def model(tiny_neox):
    return tiny_neox()


@pytest.fixture(scope="module")
def pool(sentences):
    rows = [Record(id=f"t{i}", instruction=s[:15], output=s) for i, s in enumerate(sentences[:14])]
    rows += [Record(id=f"x{i}", text=" ".join(sentences[i : i + 3])) for i in range(4)]  # several chunks each
    return rows


@pytest.fixture(scope="module")
def queries(sentences):
    return [Record(id="q0", instruction=sentences[50][:20], output=sentences[51]), Record(id="q1", text=sentences[52])]


def make(model, tok, tmp_path, mask_prompt=False, **over):
    ctx = MethodContext(
        model=model, tokenizer=tok, work_dir=tmp_path, trainer=CPU, model_id="tiny", mask_prompt=mask_prompt
    )
    return RiseMethod({**CFG, **over}, ctx)


def check_sums(method, queries, rows, tol):
    stored = method.score(queries)
    explained = method.explain(queries, rows)
    assert [len(line) for line in explained] == [len(r) for r in rows]
    for qi, line in enumerate(explained):
        for j, pair in enumerate(line):
            # the two sides and the recomputed score agree to float64 rounding
            assert pair.row.total == pytest.approx(pair.explained, rel=1e-9, abs=1e-12)
            assert pair.query.total == pytest.approx(pair.explained, rel=1e-9, abs=1e-12)
            assert abs(pair.explained - stored[qi, rows[qi][j]]) <= tol
    return explained


@pytest.mark.parametrize(
    "over",
    [{}, {"ensemble": 2}, {"dtype": "float32"}, {"fusion": "rh+gh+rg", "lam_rg": 0.5, "dtype": "float32"}],
    ids=["fp16", "ensemble", "fp32", "three-channels"],
)
def test_token_shares_sum_to_the_stored_score(model, tiny_tokenizer, pool, queries, tmp_path, over):
    m = make(model, tiny_tokenizer, tmp_path, **over)
    m.build(pool)
    rows = [[14, 0, 15], [3, 17]]  # rows 14-17 span several chunks (overlap tokens count in both)
    tol = FP32_TOL if over.get("dtype") == "float32" else FP16_TOL
    explained = check_sums(m, queries, rows, tol)
    # the recomputed score is the float32 signatures' inner product, not only the fp16 one
    plain = m.query_vectors(queries) @ m.query_vectors(pool).T
    for qi, line in enumerate(explained):
        for j, pair in enumerate(line):
            assert pair.explained == pytest.approx(plain[qi, rows[qi][j]], abs=FP32_TOL)


def test_masked_prompts_and_first_tokens_have_no_share(model, tiny_tokenizer, pool, queries, tmp_path):
    m = make(model, tiny_tokenizer, tmp_path, mask_prompt=True)
    m.build(pool)
    (pair,) = check_sums(m, queries[:1], [[2]], FP16_TOL)[0]
    enc = encode_record(pool[2], tiny_tokenizer, 2, mask_prompt=True, max_length=None)
    assert [s is not None for s in pair.row.shares] == enc.target_mask.tolist()
    assert "".join(pair.row.pieces).replace(" ", "") in tiny_tokenizer.decode(enc.input_ids).replace(" ", "")
    assert pair.query.shares[0] is None and any(s is not None for s in pair.query.shares)


def test_row_shares_equal_a_direct_computation(model, tiny_tokenizer, pool, queries, tmp_path):
    """One-chunk texts: phi = (sum_t [lam_rh r_t (x) h_t, lam_gh g_t (x) h_t]) / |.|, written out here."""
    m = make(model, tiny_tokenizer, tmp_path, dtype="float32", chunk_len=128)
    m.build(pool)
    head = RiseHead.from_model(model, m.rise, m.sketch_tables)

    def terms(rec):
        enc = encode_record(rec, tiny_tokenizer, 0, mask_prompt=False, max_length=None)
        assert len(enc) <= 128
        ids = torch.as_tensor(enc.input_ids)[None]
        h = hidden_states(model, ids, torch.ones_like(ids))[0]
        t = torch.nonzero(torch.as_tensor(enc.target_mask)).flatten()
        sk = {k: v.double() for k, v in head.token_sketches(h[t - 1], ids[0, t]).items()}
        per_token = [
            torch.cat([m.rise.lam_rh * torch.outer(sk["r"][i], sk["h"][i]).flatten(),
                       m.rise.lam_gh * torch.outer(sk["g"][i], sk["h"][i]).flatten()])
            for i in range(len(t))
        ]  # fmt: skip
        u = torch.stack(per_token)
        return t.numpy(), u, u.sum(0).norm()

    query = queries[1]
    qt, qu, qz = terms(query)
    phi_q = qu.sum(0) / qz
    rows = [0, 5, 9]
    (line,) = m.explain([query], [rows])
    for i, pair in zip(rows, line):
        t, u, z = terms(pool[i])
        direct = (u @ phi_q / z).numpy()
        got = np.array([pair.row.shares[p] for p in t])
        np.testing.assert_allclose(got, direct, rtol=1e-5, atol=1e-7)
        phi_x = l2_normalize(u.sum(0)[None])[0]
        np.testing.assert_allclose([pair.query.shares[p] for p in qt], (qu @ phi_x / qz).numpy(), rtol=1e-5, atol=1e-7)


def test_rows_come_from_the_index_tokens_or_else_the_pool(model, tiny_tokenizer, pool, queries, tmp_path):
    m = make(model, tiny_tokenizer, tmp_path / "a", index={"store_tokens": False})
    m.build(pool)
    with pytest.raises(DataError, match="store_tokens"):
        m.explain(queries[:1], [[0]])
    with_pool = m.explain(queries[:1], [[0]], pool=pool)[0][0]
    stored = make(model, tiny_tokenizer, tmp_path / "b")
    stored.build(pool)
    from_index = stored.explain(queries[:1], [[0]])[0][0]
    assert with_pool.row.pieces == from_index.row.pieces
    np.testing.assert_allclose(with_pool.explained, from_index.explained, rtol=1e-6)
