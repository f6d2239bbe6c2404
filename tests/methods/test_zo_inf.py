"""ZO-Inf: the estimator against hand-computed values, the method against a plain reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import GPTNeoXForCausalLM

from rise_exp.core.errors import ConfigError
from rise_exp.data.records import Record
from rise_exp.methods.base import MethodContext
from rise_exp.methods.common import encode_all
from rise_exp.methods.zo_inf.method import ZOInf, gram_matrix, neighbours, spearman_matrix, zo_influence
from rise_exp.training.model_losses import masked_row_losses, row_losses, token_nll

# ZO-Inf's tiny model is smaller than the other method tests' default one.
ZO_MODEL = dict(hidden_size=16, layers=1, heads=2, intermediate_size=32, max_position=64)


def gram_1d(theta: list[float]) -> np.ndarray:
    t = np.asarray(theta, dtype=np.float64)[:, None]
    return t @ t.T


def test_neighbour_window_is_symmetric_and_clipped():
    assert neighbours(0, 3, 2) == [1]
    assert neighbours(1, 3, 2) == [0, 2]
    assert neighbours(2, 5, 4) == [0, 1, 3, 4]
    assert neighbours(0, 5, 4) == [1, 2]


def test_three_checkpoints_by_hand():
    # 1-D parameters theta = (0, 1, 3); neighbours (k=2): N(0)={1}, N(1)={0,2}, N(2)={1}.
    # In 1-D, g_e(z) = sum_j d_ej / D_ej: a sum of finite-difference slopes.
    # train z1: l = (4, 3, 1): g0 = (4-3)/(0-1) = -1; g1 = (3-4)/1 + (3-1)/(1-3) = -2; g2 = (1-3)/(3-1) = -1
    # train z2: l = (1, 2, 2): g0 = 1;                g1 = 1 + 0 = 1;               g2 = 0
    # query q:  l = (2, 1.5, 0.5): g0 = -0.5;         g1 = -0.5 - 0.5 = -1;         g2 = -0.5
    # I(z1, q) = (0.5 + 2 + 0.5) / 3 = 1.0;  I(z2, q) = (-0.5 - 1 + 0) / 3 = -0.5
    train = np.array([[4.0, 1.0], [3.0, 2.0], [1.0, 2.0]])
    test = np.array([[2.0], [1.5], [0.5]])
    plain = zo_influence(train, test, gram_1d([0, 1, 3]), neighbors=2, center_losses=False, weight_by_correlation=False)
    np.testing.assert_allclose(plain, [[1.0], [-0.5]], atol=1e-12)
    # Spearman over checkpoints: z1 (4,3,1) vs q (2,1.5,.5): +1. z2 ranks (1, 2.5, 2.5) vs q ranks (3, 2, 1):
    # centred (-1, .5, .5) . (1, 0, -1) = -1.5, norms sqrt(1.5) * sqrt(2) -> rho = -1.5 / sqrt(3) = -0.8660.
    weighted = zo_influence(
        train, test, gram_1d([0, 1, 3]), neighbors=2, center_losses=False, weight_by_correlation=True
    )
    np.testing.assert_allclose(weighted, [[1.0], [0.5 * 1.5 / np.sqrt(3.0)]], atol=1e-12)


def test_two_checkpoints_vectors_centering_and_norm_power_by_hand():
    # theta0 = (0, 0), theta1 = (1, 2): ||D||^2 = 5. Each checkpoint has the other as its one neighbour and
    # both give the same term, so I = d(z) d(q) <D, D> / ||D||^(2p) = d(z) d(q) * 5 / 5^p.
    w = np.array([[0.0, 0.0], [0.0, 5.0]])  # Gram of (0,0), (1,2)
    train = np.array([[3.0, 2.0], [1.0, 1.5]])  # d = l0 - l1 = (2, 0.5)
    test = np.array([[2.0, 0.0], [1.0, 1.0]])  # d = (1, -1)
    out = zo_influence(train, test, w, neighbors=4, center_losses=False, weight_by_correlation=False)
    np.testing.assert_allclose(out, [[0.4, -0.4], [0.1, -0.1]], atol=1e-12)
    out4 = zo_influence(train, test, w, neighbors=4, center_losses=False, weight_by_correlation=False, norm_power=4)
    np.testing.assert_allclose(out4, np.array([[0.4, -0.4], [0.1, -0.1]]) / 25.0, atol=1e-12)
    # Centering: train l0 (3,2) - 2.5 = (.5,-.5), l1 (1,1.5) - 1.25 = (-.25,.25) -> d = (.75, -.75);
    # test l0 (2,0) - 1 = (1,-1), l1 (1,1) - 1 = (0,0) -> d = (1, -1); I = d d' / 5.
    cen = zo_influence(train, test, w, neighbors=4, center_losses=True, weight_by_correlation=False)
    np.testing.assert_allclose(cen, [[0.15, -0.15], [-0.15, 0.15]], atol=1e-12)


def test_spearman_of_a_constant_trajectory_is_zero():
    rho = spearman_matrix(np.array([[1.0, 3.0], [1.0, 2.0], [1.0, 1.0]]), np.array([[3.0], [2.0], [1.0]]))
    np.testing.assert_allclose(rho, [[0.0], [1.0]], atol=1e-12)


@pytest.fixture(scope="module")
def trajectory(tmp_path_factory, word_tokenizer, tiny_lm):
    """Three saved checkpoints: a base model and two drifts of it (stand-ins for finetuning epochs)."""
    root = tmp_path_factory.mktemp("ckpts")
    model = tiny_lm(len(word_tokenizer), seed=0, **ZO_MODEL)
    paths, models = [], []
    gen = torch.Generator().manual_seed(1)
    for e in range(3):
        if e:
            with torch.no_grad():
                for p in model.parameters():
                    p.add_(0.05 * torch.randn(p.shape, generator=gen))
        path = root / f"epoch{e}"
        model.save_pretrained(path)
        paths.append(path)
        models.append(GPTNeoXForCausalLM.from_pretrained(path).eval())
    return paths, models


def test_zo_inf_end_to_end_matches_explicit_displacement_reference(word_tokenizer, trajectory, make_records, tmp_path):
    paths, models = trajectory
    ctx = MethodContext(model=models[-1], tokenizer=word_tokenizer, work_dir=tmp_path, checkpoints=paths, max_length=32)
    train, queries = make_records(8, seed=0), make_records(3, seed=1)
    method = ZOInf({"neighbors": 2}, ctx)
    method.build(train)
    scores = method.score(queries)
    assert scores.shape == (3, 8) and scores.dtype == np.float32 and np.isfinite(scores).all()
    assert method.index_bytes == 3 * 8 * 8 + 3 * 3 * 8
    # Plain reference: explicit LM-head displacement vectors and per-epoch gradient estimates g_e.
    pad = word_tokenizer.pad_token_id
    tr = np.stack([row_losses(m, encode_all(train, ctx), pad).numpy() for m in models])
    te = np.stack([row_losses(m, encode_all(queries, ctx), pad).numpy() for m in models])
    thetas = [m.get_output_embeddings().weight.detach().double().reshape(-1).numpy() for m in models]
    trc, tec = tr - tr.mean(1, keepdims=True), te - te.mean(1, keepdims=True)
    ref = np.zeros((8, 3))
    for e in range(3):
        nb = neighbours(e, 3, 2)
        disp = [thetas[e] - thetas[j] for j in nb]
        g_tr = sum(np.outer(trc[e] - trc[j], d) / (d @ d) for j, d in zip(nb, disp))
        g_te = sum(np.outer(tec[e] - tec[j], d) / (d @ d) for j, d in zip(nb, disp))
        ref += g_tr @ g_te.T / 3
    ref *= spearman_matrix(tr, te)
    np.testing.assert_allclose(scores, ref.T, rtol=1e-4, atol=1e-6 * np.abs(ref).max())


def test_zo_inf_without_checkpoints_says_how_to_get_them(word_tokenizer, tiny_lm, tmp_path):
    model = tiny_lm(len(word_tokenizer), seed=0, **ZO_MODEL)
    ctx = MethodContext(model=model, tokenizer=word_tokenizer, work_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"needs at least 2 finetuning checkpoints .* but has 0.*finetune.epochs"):
        ZOInf({}, ctx)
    ctx.checkpoints = [tmp_path / "a"]
    with pytest.raises(ConfigError, match="but has 1"):
        ZOInf({"min_checkpoints": 2}, ctx)
    ctx.checkpoints = [tmp_path / "a", tmp_path / "b"]
    with pytest.raises(ConfigError, match="checkpoint directories not found"):
        ZOInf({}, ctx)


def test_zo_inf_rejects_unknown_param_scope(word_tokenizer, trajectory, tmp_path):
    paths, models = trajectory
    ctx = MethodContext(model=models[-1], tokenizer=word_tokenizer, work_dir=tmp_path, checkpoints=paths)
    with pytest.raises(ConfigError, match="method.params.*allowed values: lm_head, all"):
        ZOInf({"params": "attention"}, ctx)


def test_chunked_gram_equals_the_float64_product_of_the_stacked_vectors():
    gen = torch.Generator().manual_seed(0)
    params = [torch.randn(1003, generator=gen) for _ in range(4)]
    stacked = torch.stack(params).double()
    np.testing.assert_allclose(gram_matrix(params, chunk=97), (stacked @ stacked.T).numpy(), rtol=1e-12)
    np.testing.assert_allclose(gram_matrix(params), (stacked @ stacked.T).numpy(), rtol=1e-12)


def test_checkpoint_losses_are_cached_resumed_and_invalidated(
    word_tokenizer, trajectory, make_records, tmp_path, monkeypatch
):
    """A rebuild loads no model; a lost loss file is recomputed alone; an edited checkpoint is not reused."""
    paths, models = trajectory
    ctx = MethodContext(model=models[-1], tokenizer=word_tokenizer, work_dir=tmp_path, checkpoints=paths, max_length=32)
    train, queries = make_records(8, seed=0), make_records(3, seed=1)
    first = ZOInf({"neighbors": 2}, ctx)
    first.build(train)
    expected = first.score(queries)
    cached = sorted(first.cache_dir().glob("*.npy"))
    assert len(cached) == 3 + 3 + 1  # train losses and query losses per checkpoint, the Gram matrix
    loads = []
    real_load = ZOInf._load
    monkeypatch.setattr(ZOInf, "_load", lambda self, p: loads.append(p) or real_load(self, p))
    again = ZOInf({"neighbors": 2}, ctx)
    again.build(train)
    np.testing.assert_array_equal(again.score(queries), expected)
    assert loads == []
    # a run killed before one checkpoint's losses were written: only that checkpoint is loaded again
    lost = next(p for p in cached if p != again._gram_path())
    lost.unlink()
    again = ZOInf({"neighbors": 2}, ctx)
    again.build(train)
    np.testing.assert_array_equal(again.score(queries), expected)
    assert len(loads) == 1 and lost.is_file()
    # weights replaced in place: new keys, so the old losses are not served
    models[1].save_pretrained(paths[1])
    before = set(first.cache_dir().glob("*.npy"))
    ZOInf({"neighbors": 2}, ctx).build(train)
    assert len(set(first.cache_dir().glob("*.npy")) - before) == 2  # that checkpoint's train losses, a new Gram


def instruction_records(n: int, seed: int) -> list[Record]:
    """Instruction rows of varying prompt and answer length (so the token rule changes the loss)."""
    rng = np.random.default_rng(seed)
    words = "the a bank loan rate stock patient doctor star ship".split()

    def text(lo: int, hi: int) -> str:
        return " ".join(rng.choice(words, int(rng.integers(lo, hi))))

    return [Record(id=f"q{i}", instruction=text(2, 9), output=text(1, 6)) for i in range(n)]


@pytest.mark.parametrize("mask_prompt", [False, True])
def test_token_losses_reduce_to_the_row_losses_of_either_token_rule(word_tokenizer, trajectory, tmp_path, mask_prompt):
    _, models = trajectory
    ctx = MethodContext(model=models[0], tokenizer=word_tokenizer, work_dir=tmp_path, mask_prompt=mask_prompt)
    rows = encode_all(instruction_records(7, seed=3), ctx)
    pad = word_tokenizer.pad_token_id
    nll = token_nll(models[0], rows, pad, max_tokens=40)  # several padded batches
    assert [len(v) for v in nll] == [len(r) for r in rows] and all(v[0] == 0 for v in nll)
    for reduction in ("mean", "sum"):
        expected = row_losses(models[0], rows, pad, max_tokens=40, reduction=reduction).numpy()
        np.testing.assert_allclose(masked_row_losses(nll, rows, reduction), expected, rtol=1e-5)
    with pytest.raises(ConfigError, match="unknown loss reduction 'median'"):
        masked_row_losses(nll, rows, "median")


def test_the_other_token_rule_reuses_the_cached_token_losses(word_tokenizer, trajectory, tmp_path, monkeypatch):
    """Answers-only after every-token: no model is loaded, and the scores equal a build from scratch."""
    paths, models = trajectory
    train, queries = instruction_records(8, seed=0), instruction_records(3, seed=1)

    def method(mask_prompt: bool, work_dir) -> ZOInf:
        ctx = MethodContext(
            model=models[-1], tokenizer=word_tokenizer, work_dir=work_dir, checkpoints=paths, mask_prompt=mask_prompt
        )
        return ZOInf({"neighbors": 2}, ctx)

    every = method(False, tmp_path / "shared")
    every.build(train)
    every_scores = every.score(queries)
    fresh = method(True, tmp_path / "fresh")
    fresh.build(train)
    expected = fresh.score(queries)
    assert not np.allclose(expected, every_scores)  # the token rule matters here
    loads = []
    monkeypatch.setattr(ZOInf, "_load", lambda self, p: loads.append(p))
    answers = method(True, tmp_path / "shared")
    answers.build(train)
    np.testing.assert_array_equal(answers.score(queries), expected)
    assert loads == []


def test_a_token_loss_file_of_the_wrong_size_is_recomputed(word_tokenizer, trajectory, make_records, tmp_path):
    paths, models = trajectory
    ctx = MethodContext(model=models[-1], tokenizer=word_tokenizer, work_dir=tmp_path, checkpoints=paths)
    train, queries = make_records(6, seed=0), make_records(2, seed=1)
    first = ZOInf({"neighbors": 2}, ctx)
    first.build(train)
    expected = first.score(queries)
    damaged = next(p for p in sorted(first.cache_dir().glob("*.npy")) if p != first._gram_path())
    np.save(damaged, np.zeros(3, dtype=np.float32))
    again = ZOInf({"neighbors": 2}, ctx)
    again.build(train)
    np.testing.assert_array_equal(again.score(queries), expected)
    assert np.load(damaged).size > 3
