"""STRIDE: subset design, planted sparse recovery, and the method end to end on a tiny model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rise_exp.core.errors import ConfigError
from rise_exp.methods.base import MethodContext
from rise_exp.methods.common import encode_all
from rise_exp.methods.stride.method import Stride, auto_layer
from rise_exp.methods.stride.sparse_recovery import balanced_membership, lasso_alpha_max, lasso_recover
from rise_exp.methods.stride.steering import SteeringBank
from rise_exp.models.layers import decoder_layers


def test_membership_is_exact_per_example_and_balanced_per_subset():
    m = balanced_membership(n=103, n_subsets=40, per_example=7, rng=np.random.default_rng(0))
    assert m.shape == (40, 103) and m.dtype == bool
    assert (m.sum(axis=0) == 7).all()
    sizes = m.sum(axis=1)
    assert sizes.max() - sizes.min() <= 1 and sizes.sum() == 103 * 7
    again = balanced_membership(n=103, n_subsets=40, per_example=7, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(m, again)
    with pytest.raises(ConfigError, match="subsets_per_example"):
        balanced_membership(n=5, n_subsets=3, per_example=4, rng=np.random.default_rng(0))


def test_lasso_recovers_planted_sparse_influences():
    rng = np.random.default_rng(1)
    n, s, q = 300, 200, 4
    m = balanced_membership(n, s, per_example=10, rng=rng).astype(np.float64)
    beta = np.zeros((n, q))
    supports = [rng.choice(n, 5, replace=False) for _ in range(q)]
    for j, sup in enumerate(supports):
        beta[sup, j] = rng.choice([-1.0, 1.0], 5) * rng.uniform(1.0, 2.0, 5)
    y = m @ beta + 0.3 + 0.05 * rng.standard_normal((s, q))  # intercept + noise
    est = lasso_recover(m, y, alpha_ratio=0.05)
    for j, sup in enumerate(supports):
        top = np.argsort(-np.abs(est[:, j]))[:5]
        assert set(top) == set(sup)
        np.testing.assert_array_equal(np.sign(est[sup, j]), np.sign(beta[sup, j]))
    # the penalty scale: alpha_max zeroes everything, just below it does not
    amax = lasso_alpha_max(m, y)
    assert np.abs(lasso_recover(m, y[:, :1], alpha_ratio=1.0)).max() == 0.0
    assert np.abs(lasso_recover(m, y[:, :1], alpha_ratio=0.9)).max() > 0.0
    assert (amax > 0).all()


def test_steering_bank_starts_as_identity_and_steers_only_tagged_rows(tiny_lm):
    model = tiny_lm(50)
    bank = SteeringBank(n_ops=3, hidden=32, rank=4, generator=torch.Generator().manual_seed(0))
    x = torch.randint(0, 50, (2, 6))
    base = model(x).logits
    with bank.attached(decoder_layers(model)[1]):
        bank.op_ids = torch.tensor([0, -1])
        torch.testing.assert_close(model(x).logits, base)  # B_k = 0 at init
        with torch.no_grad():
            bank.write[0].normal_()
        steered = model(x).logits
    assert not torch.allclose(steered[0], base[0])
    torch.testing.assert_close(steered[1], base[1])  # op id -1: untouched
    torch.testing.assert_close(model(x).logits, base)  # hook removed on exit


def test_auto_layer_follows_two_thirds_depth():
    assert auto_layer(12) == 8 and auto_layer(24) == 16 and auto_layer(2) == 1 and auto_layer(1) == 0


@pytest.fixture(scope="module")
def built(word_tokenizer, tiny_lm, make_records, tmp_path_factory):
    ctx = MethodContext(
        model=tiny_lm(len(word_tokenizer)),
        tokenizer=word_tokenizer,
        work_dir=tmp_path_factory.mktemp("stride"),
        max_length=32,
        seed=3,
    )
    train = make_records(60, seed=0)
    method = Stride({"steps": 120, "operators_per_step": 16, "subsets_per_example": 6}, ctx)
    method.build(train)
    return method, train


def test_stride_end_to_end_scores_and_self_attribution(built, make_records):
    method, train = built
    assert method.membership.shape == (60, 60) and method.layer == 1
    assert method.train_log[-1] < method.train_log[0]
    scores = method.score(make_records(4, seed=1))
    assert scores.shape == (4, 60) and scores.dtype == np.float32 and np.isfinite(scores).all()
    assert method.index_bytes > 0
    # Operators mimic training on their subsets: members' losses drop far more than non-members'.
    y = method.measure(train)
    assert y[method.membership].mean() > 3 * y[~method.membership].mean()
    # A training row used as the query should attribute most to itself.
    self_scores = method.score(train[:20])
    top1 = np.mean([np.argmax(self_scores[i]) == i for i in range(20)])
    assert top1 >= 0.8, f"self-attribution top-1 rate {top1:.2f}"


def test_stride_is_deterministic_given_the_seed(built, word_tokenizer, make_records, tmp_path):
    method, train = built
    ctx = MethodContext(model=method.ctx.model, tokenizer=word_tokenizer, work_dir=tmp_path, max_length=32, seed=3)
    other = Stride({"steps": 120, "operators_per_step": 16, "subsets_per_example": 6}, ctx)
    other.build(train)
    q = make_records(2, seed=5)
    np.testing.assert_allclose(other.score(q), method.score(q), rtol=1e-5, atol=1e-7)


def test_stride_rejects_bad_settings(word_tokenizer, tiny_lm, make_records, tmp_path):
    ctx = MethodContext(model=tiny_lm(len(word_tokenizer)), tokenizer=word_tokenizer, work_dir=tmp_path)
    with pytest.raises(ConfigError, match="method.n_subsets must be null"):
        Stride({"n_subsets": 3}, ctx)
    with pytest.raises(ConfigError, match=r"method.layer must be null \(auto\) or a block index in \[0, 2\)"):
        Stride({"layer": 5}, ctx).build(make_records(20, seed=0))
    with pytest.raises(ConfigError, match="method.lasso_alpha_ratio must be > 0"):
        Stride({"lasso_alpha_ratio": 0}, ctx)


def test_stride_stores_its_operators_and_reuses_them(
    word_tokenizer, tiny_lm, make_records, tmp_path, caplog, monkeypatch
):
    """Operators are saved in the index cache and loaded (not retrained) by a run with the same model, tokens,
    seed and training settings; anything that shapes training gets its own file; a damaged file is retrained."""
    model = tiny_lm(len(word_tokenizer))

    def stride(model_id: str = "m", seed: int = 3, **settings) -> Stride:
        ctx = MethodContext(
            model=model,
            tokenizer=word_tokenizer,
            work_dir=tmp_path,
            max_length=32,
            seed=seed,
            index_root=tmp_path / "indexes",
            model_id=model_id,
        )
        return Stride({"steps": 4, "operators_per_step": 8, "subsets_per_example": 4, **settings}, ctx)

    train, queries = make_records(30, seed=0), make_records(3, seed=1)
    rows = encode_all(train, stride().ctx)
    first = stride()
    path = first.operator_file(rows)
    assert path is not None and not path.exists()
    first.build(train)
    assert path.is_file() and len(first.train_log) == 4
    expected = first.score(queries)

    trained: list[int] = []
    original = Stride._train
    monkeypatch.setattr(Stride, "_train", lambda self, *a: trained.append(1) or original(self, *a))
    again = stride(lasso_alpha_ratio=0.02)  # a recovery setting: the same operators
    assert again.operator_file(rows) == path
    again.build(train)
    assert not trained
    np.testing.assert_array_equal(again.bank.write.detach(), first.bank.write.detach())
    np.testing.assert_array_equal(again.membership, first.membership)
    assert again.layer == first.layer and again.train_log == first.train_log
    same = stride()
    same.build(train)
    np.testing.assert_array_equal(same.score(queries), expected)

    # model, seed, tokens or a training setting changed: another file
    others = {
        stride("m2").operator_file(rows),
        stride(seed=4).operator_file(rows),
        stride(steps=5).operator_file(rows),
    }
    others.add(first.operator_file(rows[:-1]))
    assert path not in others and len(others) == 4
    explicit = Stride({"steps": 4, "operators_per_step": 8, "subsets_per_example": 4, "seed": 3}, first.ctx)
    assert explicit.operator_file(rows) == path  # method.seed set to the global seed: the same operators
    assert (
        Stride({}, MethodContext(model=model, tokenizer=word_tokenizer, work_dir=tmp_path)).operator_file(rows) is None
    )

    stride(reuse_operators=False).build(train)  # retrains and overwrites
    assert len(trained) == 1

    path.write_bytes(path.read_bytes()[:64])  # damaged
    with caplog.at_level("WARNING"):
        damaged = stride()
        damaged.build(train)
    assert "stored operators" in caplog.text and "is damaged" in caplog.text and len(trained) == 2
    np.testing.assert_allclose(damaged.score(queries), expected, rtol=1e-5, atol=1e-7)
    assert stride().operator_file(rows).is_file()

    def unwritable(*_):
        raise OSError("disk full")

    monkeypatch.setattr("rise_exp.methods.stride.method.save_operators", unwritable)
    with caplog.at_level("WARNING"):
        kept = stride(reuse_operators=False)
        kept.build(train)  # the write fails; the run keeps its operators and goes on
    assert "could not store the operators" in caplog.text and len(trained) == 3
    np.testing.assert_allclose(kept.score(queries), expected, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("layer", [1, None])
@pytest.mark.parametrize("arch", ["gpt_neox", "llama", "olmo2"])
def test_replayed_prefix_gives_the_full_pass_operators_and_scores(
    arch, layer, tiny_lm, word_tokenizer, make_records, tmp_path
):
    """method.replay_prefix (blocks up to the steered one computed once per row) = full passes every time."""
    model = tiny_lm(len(word_tokenizer), arch=arch, layers=4, intermediate_size=64)
    train, queries = make_records(30, seed=0), make_records(5, seed=1)
    runs = {}
    for replay in (True, False):
        ctx = MethodContext(model=model, tokenizer=word_tokenizer, work_dir=tmp_path, max_length=32, seed=2)
        cfg = {"steps": 8, "operators_per_step": 8, "subsets_per_example": 4, "layer": layer, "replay_prefix": replay}
        m = Stride(cfg, ctx)
        m.build(train)
        runs[replay] = (m, m.measure(queries), m.score(queries))
    (fast, y_fast, s_fast), (full, y_full, s_full) = runs[True], runs[False]
    assert fast.layer == (auto_layer(4) if layer is None else layer)  # the last block, or blocks run above it
    np.testing.assert_allclose(fast.train_log, full.train_log, rtol=1e-5)
    np.testing.assert_allclose(y_fast, y_full, atol=1e-5)
    assert np.abs(y_full).max() > 1e-3  # the operators moved the losses: the comparison is not of zeros
    np.testing.assert_allclose(s_fast, s_full, atol=1e-4)
    # the model's blocks are restored after each phase
    assert all(type(b).__name__.endswith(("Layer", "DecoderLayer")) for b in decoder_layers(model))


def test_micro_batched_operator_steps_equal_one_batch_steps(tiny_lm, word_tokenizer, make_records, tmp_path):
    """A step's rows split into token-budget micro-batches (method.max_tokens) give the one-batch gradients."""
    model = tiny_lm(len(word_tokenizer), layers=4, intermediate_size=64)
    train, queries = make_records(30, seed=0), make_records(4, seed=1)
    out = {}
    for max_tokens in (24, 100_000):  # ~3 rows per micro-batch vs the whole step at once
        ctx = MethodContext(model=model, tokenizer=word_tokenizer, work_dir=tmp_path, max_length=32, seed=2)
        m = Stride({"steps": 6, "operators_per_step": 8, "subsets_per_example": 4, "max_tokens": max_tokens}, ctx)
        m.build(train)
        out[max_tokens] = (m.train_log, m.measure(queries))
    np.testing.assert_allclose(out[24][0], out[100_000][0], rtol=1e-5)
    np.testing.assert_allclose(out[24][1], out[100_000][1], atol=1e-5)
    assert np.abs(out[24][1]).max() > 1e-3
