"""What made EK-FAC and TrackStar cheaper changes no score: EK-FAC's query batching and its frozen garbage
collector, TrackStar's second moments stored with its gradients (a reused store recomputes nothing)."""

from __future__ import annotations

import gc

import numpy as np
import pytest
import torch

from rise_exp.methods.base import MethodContext


@pytest.fixture()
def tiny(tiny_lm, word_tokenizer):
    return tiny_lm(len(word_tokenizer), hidden_size=8, heads=2, intermediate_size=16, layers=1)


def context(model, tokenizer, tmp_path) -> MethodContext:
    return MethodContext(
        model=model, tokenizer=tokenizer, work_dir=tmp_path, index_root=tmp_path / "indexes", model_id="tiny"
    )


def test_ekfac_scores_do_not_depend_on_the_query_batch(tiny, word_tokenizer, make_records, tmp_path):
    pytest.importorskip("kronfluence")
    from rise_exp.methods.ekfac.method import EKFAC

    train, queries = make_records(8, 0), make_records(5, 1)
    ctx = context(tiny.double(), word_tokenizer, tmp_path)
    one_pass = EKFAC({"dtype": "float64", "damping": 0.05}, ctx)  # the default: all 5 queries in one batch
    assert one_pass.cfg.query_batch >= 64
    one_pass.build(train)
    per_query = EKFAC({"dtype": "float64", "damping": 0.05, "query_batch": 1}, ctx)
    per_query.build(train)  # (the same cached factors)
    frozen = gc.get_freeze_count()
    expected = per_query.score(queries)
    np.testing.assert_allclose(one_pass.score(queries), expected, rtol=1e-10, atol=1e-12 * np.abs(expected).max())
    assert gc.get_freeze_count() == frozen  # the collector is handed back as it was


def test_a_reused_trackstar_store_keeps_its_second_moments(tiny, word_tokenizer, make_records, tmp_path, monkeypatch):
    pytest.importorskip("bergson")
    from rise_exp.methods.trackstar import method as trackstar
    from rise_exp.methods.trackstar.method import MOMENTS, TrackStar

    train, queries = make_records(6, 0), make_records(3, 1)
    ctx = context(tiny, word_tokenizer, tmp_path)
    first = TrackStar({"projection_dim": 4, "batch_rows": 4, "seed": 3}, ctx)
    first.build(train)
    assert first.store is not None and (first.store / MOMENTS).is_file()
    expected = first.score(queries)
    computed = {m: n.weight_avg_sq.clone() for m, n in first.normalizers.items()}

    def recomputed(*args, **kwargs):
        raise AssertionError("a reused store recomputed the second moments")

    monkeypatch.setattr(trackstar, "pool_second_moments", recomputed)
    again = TrackStar({"projection_dim": 4, "batch_rows": 4, "seed": 3}, ctx)
    again.build(train)
    assert sorted(again.normalizers) == sorted(computed)
    for m, v in computed.items():
        assert torch.equal(again.normalizers[m].weight_avg_sq, v)
    np.testing.assert_array_equal(again.score(queries), expected)

    # no normaliser: nothing stored, nothing loaded
    plain = TrackStar({"projection_dim": 4, "batch_rows": 4, "seed": 3, "normalizer": "none"}, ctx)
    plain.build(train)
    assert plain.store is not None and not (plain.store / MOMENTS).exists() and plain.normalizers == {}


def test_trackstar_preconditioner_whitens_each_module_by_the_pools_autocorrelation(
    tiny, word_tokenizer, make_records, tmp_path
):
    """``preconditioner: pool``: cosines of ``v_m R_m^-1/2`` per module, ``R_m`` the pool's autocorrelation of the
    stored projected gradients, eigenvalues damped by 0.1 x their mean (formed here with numpy's eigh)."""
    pytest.importorskip("bergson")
    from bergson import load_gradients

    from rise_exp.methods.trackstar.method import TrackStar

    train = make_records(10, 0)
    ctx = context(tiny, word_tokenizer, tmp_path)
    method = TrackStar({"projection_dim": 4, "batch_rows": 4, "seed": 2, "preconditioner": "pool"}, ctx)
    method.build(train)
    raw = np.asarray(load_gradients(method.store), dtype=np.float64)
    blocks = []
    for j in range(raw.shape[1] // 16):  # 4 trunk modules, k x k = 16 columns each
        x = raw[:, 16 * j : 16 * (j + 1)]
        lam, vecs = np.linalg.eigh(x.T @ x / len(x))
        lam = np.clip(lam, 0, None)
        blocks.append(x @ (vecs * (lam + 0.1 * lam.mean()) ** -0.5) @ vecs.T)
    assert len(blocks) == 4
    v = np.concatenate(blocks, axis=1)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    # queries = the first three training rows, so their raw gradients are the stored ones
    np.testing.assert_allclose(method.score(train[:3]), v[:3] @ v.T, atol=1e-4)
    plain = TrackStar({"projection_dim": 4, "batch_rows": 4, "seed": 2}, ctx)
    plain.build(train)  # the same stored gradients: the preconditioner is applied after loading them
    assert plain.store == method.store
    assert not np.allclose(plain.score(train[:3]), v[:3] @ v.T, atol=1e-2)
