"""RISE as a method: Lightning indexing equals the plain path, resume works, an ensemble scores the mean of
its members (DDP: tests/reliability/)."""

from __future__ import annotations

import numpy as np
import pytest

from rise_exp.config.trainer import TrainerConfig
from rise_exp.core.errors import ConfigError, IndexError_
from rise_exp.index import SignatureIndex
from rise_exp.methods.base import MethodContext
from rise_exp.methods.rise import RiseConfig, compute_signatures
from rise_exp.methods.rise.method import RiseMethod
from rise_exp.methods.rise.sketch import SEED_STRIDE

CFG = {
    "name": "rise",
    "kr": 16,
    "kh": 16,
    "kg": 8,
    "seed": 3,
    "chunk_len": 12,
    "chunk_overlap": 4,
    "index": {"block_rows": 7, "batch_tokens": 96},
}
CPU = TrainerConfig(accelerator="cpu", devices=1, precision="32-true")


@pytest.fixture(scope="module")
def model(tiny_neox):
    return tiny_neox()


@pytest.fixture(scope="module")
def pool(make_pool):
    return make_pool(23, 6)  # the 6 long rows are longer than a chunk


def make(model, tok, tmp_path, trainer=CPU, **over):
    ctx = MethodContext(model=model, tokenizer=tok, work_dir=tmp_path, trainer=trainer, model_id="tiny")
    return RiseMethod({**CFG, **over}, ctx)


def test_lightning_index_equals_plain_signatures(model, tiny_tokenizer, pool, tmp_path):
    m = make(model, tiny_tokenizer, tmp_path)
    m.build(pool)
    plain = m.query_vectors(pool)  # train and query rows are encoded alike by default
    stored = m.index.vectors(dtype="float32")
    np.testing.assert_allclose(stored, plain, atol=2e-3)  # fp16 storage
    assert m.index_bytes == len(pool) * m.rise.signature_dim * 2
    scores = m.score(pool[:3])
    assert scores.shape == (3, len(pool))
    assert list(scores.argmax(1)) == [0, 1, 2]  # a row is most similar to itself
    ids, mask = m.index.row_tokens(5)  # the recompute data is stored
    assert ids.shape == mask.shape and mask.any()
    assert m.index.row_meta(5)["id"] == pool[5].id


def test_interrupted_build_resumes_and_a_changed_config_is_refused(model, tiny_tokenizer, pool, tmp_path):
    full = make(model, tiny_tokenizer, tmp_path / "full")
    full.build(pool)
    m = make(model, tiny_tokenizer, tmp_path / "part")
    m.build(pool)
    root = m.index_dir()
    # simulate a crash: drop one block's marker and mark the manifest unfinished
    marker = sorted(root.glob("block-*.done"))[1]
    marker.unlink()
    manifest = (root / "manifest.json").read_text().replace('"complete"', '"building"')
    (root / "manifest.json").write_text(manifest)
    with pytest.raises(IndexError_):
        SignatureIndex.open(root)
    again = make(model, tiny_tokenizer, tmp_path / "part")
    again.build(pool)
    np.testing.assert_array_equal(again.index.vectors(), full.index.vectors())
    with pytest.raises(IndexError_, match="kr"):
        make(model, tiny_tokenizer, tmp_path / "part", kr=32).build(pool)


def test_ensemble_score_is_the_mean_of_its_members_scores(model, tiny_tokenizer, pool, tmp_path):
    m = make(model, tiny_tokenizer, tmp_path, ensemble=3)
    m.build(pool)
    assert m.index_bytes == len(pool) * 3 * (16 * 16 + 8 * 16) * 2
    assert {"h_buckets", "m1_h_buckets", "m2_r_signs"} <= set(m.tables())
    scores = m.score(pool[:4]).astype(np.float64)
    rows = m.encode(pool, "train")
    members = []
    for e in range(3):
        cfg = m.rise.replace(ensemble=1, seed=m.rise.seed + e * SEED_STRIDE)
        sig = compute_signatures(model, tiny_tokenizer.pad_token_id, rows, cfg).astype(np.float64)
        members.append(sig[:4] @ sig.T)
    np.testing.assert_allclose(scores, np.mean(members, axis=0), atol=3e-3)  # fp16 index
    single = make(model, tiny_tokenizer, tmp_path / "one")
    single.build(pool)
    np.testing.assert_allclose(single.score(pool[:4]), members[0], atol=3e-3)  # member 0 is the plain sketch


def test_each_ensemble_member_scores_as_the_single_sketch_of_its_seed(model, tiny_tokenizer, pool, tmp_path):
    m = make(model, tiny_tokenizer, tmp_path, ensemble=3)
    m.build(pool)
    members = m.member_scores(pool[:4])
    assert list(members) == [3, 3 + SEED_STRIDE, 3 + 2 * SEED_STRIDE] == m.member_seeds()
    for seed, scores in members.items():
        single = make(model, tiny_tokenizer, tmp_path / f"s{seed}", seed=seed)
        single.build(pool)
        np.testing.assert_allclose(scores, single.score(pool[:4]), atol=3e-3)  # fp16 indexes
    np.testing.assert_allclose(np.mean(list(members.values()), axis=0), m.score(pool[:4]), atol=1e-5)


def test_ensemble_needs_countsketch():
    with pytest.raises(ConfigError, match="method.ensemble"):
        RiseConfig(ensemble=2, sketch="identity")
    assert RiseConfig(ensemble=2).signature_dim == 2 * (128 * 128 + 64 * 128)


def test_the_token_rule_is_the_runs_unless_rise_overrides_it_per_role(model, tiny_tokenizer, pool, tmp_path):
    """``data.attribute_mask_prompt`` (ctx.mask_prompt) for both roles, ``method.mask_{train,query}_prompt``
    override it; the index records the query rule, so a served index encodes queries alike."""
    ctx = MethodContext(model=model, tokenizer=tiny_tokenizer, work_dir=tmp_path, mask_prompt=True)
    assert [RiseMethod(CFG, ctx).masks_prompt(role) for role in ("train", "query")] == [True, True]
    m = RiseMethod({**CFG, "mask_query_prompt": False}, ctx)
    assert [m.masks_prompt(role) for role in ("train", "query")] == [True, False]
    assert m.serving()["query_mask_prompt"] is False
    rows = m.encode(pool[:1], "train"), m.encode(pool[:1], "query")
    assert not rows[0][0].target_mask[1] and rows[1][0].target_mask[1]  # a prompt token: out, then in
