"""method=trackstar (bergson): scores equal the cosine of second-moment-normalised, projected per-module
gradients computed directly, and the training gradients are cached by the same identity rules as an index."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

pytest.importorskip("bergson")

from bergson.collector.collector import create_module_projection_matrix  # noqa: E402

from rise_exp.core.errors import ConfigError  # noqa: E402
from rise_exp.data.encoding import collate  # noqa: E402
from rise_exp.methods.base import MethodContext  # noqa: E402
from rise_exp.methods.common import batch_row_loss, encode_all, pad_id  # noqa: E402
from rise_exp.methods.trackstar.method import TrackStar, trunk_linear_modules  # noqa: E402

K = 4


@pytest.fixture()
def tiny(tiny_lm, word_tokenizer):
    return tiny_lm(len(word_tokenizer), hidden_size=8, heads=2, intermediate_size=16, layers=1)


def make(model, tokenizer, tmp_path, model_id="tiny", **settings) -> TrackStar:
    ctx = MethodContext(
        model=model, tokenizer=tokenizer, work_dir=tmp_path, index_root=tmp_path / "indexes", model_id=model_id
    )
    return TrackStar({"projection_dim": K, "batch_rows": 4, **settings}, ctx)


def weight_grads(model, rows, pad, modules) -> list[list[torch.Tensor]]:
    """Per row, each trunk module's weight gradient ``[out, in]`` of the row's mean token loss (autograd)."""
    named = dict(model.base_model.named_modules())
    weights = [named[m].weight for m in modules]
    return [list(torch.autograd.grad(batch_row_loss(model, collate([r], pad)).sum(), weights)) for r in rows]


def reference_vectors(grads, modules, moments, seed) -> torch.Tensor:
    """Concatenated ``L (G / (sqrt(V) + 1e-8)) R^T`` over modules, unit-normalised, one row per example."""
    out = []
    for row in grads:
        parts = []
        for name, g, v in zip(modules, row, moments):
            g = g / (v.sqrt() + 1e-8) if v is not None else g
            left = create_module_projection_matrix(
                name, "left", K, g.shape[0], g.dtype, g.device, "rademacher", "jl", seed
            )
            right = create_module_projection_matrix(
                name, "right", K, g.shape[1], g.dtype, g.device, "rademacher", "jl", seed
            )
            parts.append((left @ g @ right.T).reshape(-1))
        out.append(torch.cat(parts))
    vecs = torch.stack(out)
    return vecs / vecs.norm(dim=1, keepdim=True)


@pytest.mark.parametrize("normalizer", ["pool", "none"])
def test_scores_equal_cosines_of_projected_normalised_gradients(
    normalizer, tiny, word_tokenizer, make_records, tmp_path
):
    train, queries = make_records(8, 0), make_records(3, 1)
    method = make(tiny, word_tokenizer, tmp_path, normalizer=normalizer, seed=5)
    method.build(train)
    scores = method.score(queries)
    modules = trunk_linear_modules(tiny)
    pad = pad_id(word_tokenizer)
    gx = weight_grads(tiny, encode_all(train, method.ctx), pad, modules)
    gq = weight_grads(tiny, encode_all(queries, method.ctx), pad, modules)
    moments = (
        [torch.stack([row[j] ** 2 for row in gx]).mean(0) for j in range(len(modules))]
        if normalizer == "pool"
        else [None] * len(modules)
    )
    ref = reference_vectors(gq, modules, moments, 5) @ reference_vectors(gx, modules, moments, 5).T
    assert scores.shape == (3, 8)
    np.testing.assert_allclose(scores, ref.numpy(), atol=2e-5)


def test_gradients_are_reused_and_keyed_like_an_index(tiny, word_tokenizer, make_records, tmp_path):
    train, queries = make_records(6, 0), make_records(2, 1)
    first = make(tiny, word_tokenizer, tmp_path)
    first.build(train)
    assert first.store is not None and first.index_bytes == 6 * 4 * K * K * 4  # 4 modules, k x k, float32
    stamp = (first.store / "gradients.bin").stat().st_mtime_ns
    expected = first.score(queries)
    again = make(tiny, word_tokenizer, tmp_path)
    again.build(train)
    assert again.store == first.store and (first.store / "gradients.bin").stat().st_mtime_ns == stamp
    np.testing.assert_array_equal(again.score(queries), expected)
    others = {
        make(tiny, word_tokenizer, tmp_path, seed=1).store_dir("h"),
        make(tiny, word_tokenizer, tmp_path, projection_dim=2).store_dir("h"),
        make(tiny, word_tokenizer, tmp_path, normalizer="none").store_dir("h"),
        make(tiny, word_tokenizer, tmp_path, model_id="other").store_dir("h"),
        make(tiny, word_tokenizer, tmp_path).store_dir("other tokens"),
        make(tiny, word_tokenizer, tmp_path).store_dir("h"),
    }
    assert len(others) == 6


def test_a_missing_library_is_one_line(tiny, word_tokenizer, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "bergson", None)
    with pytest.raises(ConfigError, match=r"method=trackstar needs bergson .*pip install 'rise-exp\[trackstar\]'"):
        make(tiny, word_tokenizer, tmp_path)
