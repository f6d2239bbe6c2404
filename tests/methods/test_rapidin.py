"""RapidIn: exact per-example gradients, RapidGrad inner-product preservation, end-to-end scoring."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rise_exp.core.errors import ConfigError
from rise_exp.data.encoding import EncodedRow, collate
from rise_exp.data.records import Record
from rise_exp.methods.base import MethodContext
from rise_exp.methods.common import encode_all
from rise_exp.methods.rapidin.method import RapidIn, layer_normalised_flat, per_example_grads, select_params
from rise_exp.methods.rapidin.rapidgrad import RapidGrad
from rise_exp.training.losses import row_loss


def random_rows(n: int, vocab: int, seed: int = 0) -> list[EncodedRow]:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        length = int(rng.integers(4, 12))
        mask = rng.random(length) < 0.7
        mask[0], mask[-1] = False, True
        rows.append(EncodedRow(i, rng.integers(0, vocab, length).astype(np.int64), mask))
    return rows


def test_per_example_grads_sum_to_the_gradient_of_the_summed_loss(tiny_lm):
    model = tiny_lm(500)
    rows = random_rows(6, 500)
    params = [p for _, p in select_params(model, lora=False)]
    total = [torch.zeros_like(p) for p in params]
    for grads in per_example_grads(model, rows, params, pad=0, reduction="mean"):
        total = [t + g for t, g in zip(total, grads)]
    batch = collate(rows, pad_id=0)
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    loss = row_loss(logits, batch["input_ids"], batch["target_mask"], "mean").sum()
    ref = torch.autograd.grad(loss, params)
    for t, r in zip(total, ref):
        torch.testing.assert_close(t, r, rtol=1e-4, atol=1e-6)


def test_rapidgrad_is_a_signed_permutation_when_k_covers_the_dimension():
    comp = RapidGrad(dim=1000, k=1024, shuffle_lambda=20, seed=3)
    out = comp(torch.eye(1000))
    assert torch.equal(out.abs().sum(dim=1), torch.ones(1000))
    assert out.abs().argmax(dim=1).unique().numel() == 1000  # distinct buckets: a permutation
    x, y = torch.randn(2, 1000, dtype=torch.float64).float()
    assert torch.dot(comp(x), comp(y)).item() == pytest.approx(torch.dot(x, y).item(), rel=1e-4)


def test_rapidgrad_is_seeded_and_pads_to_a_multiple_of_k():
    a, b, c = RapidGrad(1001, 64, 20, seed=1), RapidGrad(1001, 64, 20, seed=1), RapidGrad(1001, 64, 20, seed=2)
    x = torch.randn(3, 1001)
    assert a.padded == 1024
    assert torch.equal(a(x), b(x))
    assert not torch.equal(a(x), c(x))
    # Linear: C(2x + y) = 2 C(x) + C(y); every bucket pools 1024 / 64 = 16 padded entries.
    torch.testing.assert_close(a(2 * x[0] + x[1]), 2 * a(x[0]) + a(x[1]), rtol=1e-5, atol=1e-5)
    assert a(torch.ones(1001)).abs().max() <= 16


def test_rapidgrad_preserves_real_gradient_inner_products(tiny_lm):
    model = tiny_lm(500)
    rows = random_rows(24, 500, seed=1)
    params = [p for _, p in select_params(model, lora=False)]
    flats = torch.stack([layer_normalised_flat(g) for g in per_example_grads(model, rows, params, pad=0)])
    assert flats.shape[1] == 57472
    exact = (flats @ flats.T).numpy()
    off = ~np.eye(exact.shape[0], dtype=bool)
    comp = RapidGrad(flats.shape[1], 2**12, shuffle_lambda=20, seed=0)(flats)  # 14x compression
    r = np.corrcoef(exact[off], (comp @ comp.T).numpy()[off])[0, 1]
    assert r > 0.95, f"Pearson {r:.3f} of compressed vs exact normalised-gradient inner products"  # seen: 0.989
    comp = RapidGrad(flats.shape[1], 2**16, shuffle_lambda=20, seed=0)(flats)  # K >= P: exact
    np.testing.assert_allclose((comp @ comp.T).numpy(), exact, rtol=1e-4, atol=1e-4)


@pytest.fixture
def make_ctx(tiny_lm):
    def make(tokenizer, tmp_path, model=None) -> MethodContext:
        model = model if model is not None else tiny_lm(len(tokenizer))
        return MethodContext(
            model=model, tokenizer=tokenizer, work_dir=tmp_path, max_length=32, mask_prompt=True, seed=7
        )

    return make


def test_rapidin_scores_equal_exact_layer_normalised_inner_products(word_tokenizer, make_ctx, make_records, tmp_path):
    ctx = make_ctx(word_tokenizer, tmp_path)
    train, queries = make_records(10, seed=0), make_records(3, seed=1)
    method = RapidIn({"k": 2**16}, ctx)
    method.build(train)
    scores = method.score(queries)
    assert scores.shape == (3, 10) and scores.dtype == np.float32
    assert method.index_bytes == 10 * 2**16 * 4
    assert (tmp_path / "rapidin_index" / "manifest.json").exists()  # stored in the method's index
    # Plain reference: exact layer-normalised gradients (K >= P makes RapidGrad exact).
    params = [p for _, p in ctx.model.named_parameters()]
    pad = word_tokenizer.pad_token_id

    def flats(recs: list[Record]) -> torch.Tensor:
        grads = per_example_grads(ctx.model, encode_all(recs, ctx), params, pad)
        return torch.stack([layer_normalised_flat(g) for g in grads])

    ref = (flats(queries) @ flats(train).T).numpy()
    np.testing.assert_allclose(scores, ref, rtol=1e-4, atol=1e-4)
    again = RapidIn({"k": 2**16, "dir": str(tmp_path / "other")}, ctx)
    again.build(train)
    np.testing.assert_array_equal(again.score(queries), scores)
    # valuation: the mean score over the targets, in one pass against the mean query vector
    np.testing.assert_allclose(method.value(queries, "mean"), scores.mean(axis=0), rtol=1e-5, atol=1e-6)


def test_rapidin_ensemble_members_are_the_single_compressions_of_their_seeds(
    word_tokenizer, make_ctx, make_records, tmp_path
):
    """ensemble=3 at a lossy K: member e scores as a plain run of seed 7 + 1000 e; the ensemble is their mean."""
    ctx = make_ctx(word_tokenizer, tmp_path)
    train, queries = make_records(8, seed=0), make_records(3, seed=1)
    ens = RapidIn({"k": 64, "seed": 7, "ensemble": 3}, ctx)
    ens.build(train)
    assert ens.dim == 3 * 64 and ens.member_seeds() == [7, 1007, 2007]
    members = ens.member_scores(queries)
    singles = []
    for seed, scores in members.items():
        single = RapidIn({"k": 64, "seed": seed, "dir": str(tmp_path / f"s{seed}")}, ctx)
        single.build(train)
        singles.append(single.score(queries))
        np.testing.assert_allclose(scores, singles[-1], rtol=1e-4, atol=1e-5)
    assert not np.allclose(singles[0], singles[1], atol=1e-3)  # the seeds really differ at K = 64
    np.testing.assert_allclose(ens.score(queries), np.mean(singles, axis=0), rtol=1e-4, atol=1e-5)
    assert "ensemble" not in RapidIn({"k": 64}, ctx).identity()  # old indexes keep their keys
    with pytest.raises(ConfigError, match="no ensemble members"):
        single.member_scores(queries)


def test_rapidin_lora_without_adapter_says_what_is_missing(word_tokenizer, make_ctx, make_records, tmp_path):
    method = RapidIn({"lora": True}, make_ctx(word_tokenizer, tmp_path))
    with pytest.raises(ConfigError, match=r"lora=true needs .*LoRA adapter.*no 'lora_' parameters.*lora=false"):
        method.build(make_records(2, seed=0))


def test_rapidin_rejects_bad_settings(word_tokenizer, make_ctx, tmp_path):
    with pytest.raises(ConfigError, match="method.k must be > 0"):
        RapidIn({"k": 0}, make_ctx(word_tokenizer, tmp_path))
    with pytest.raises(ConfigError, match="unknown setting.*method.storage"):
        RapidIn({"storage": "disk"}, make_ctx(word_tokenizer, tmp_path))


def test_lora_selects_only_adapter_parameters_of_a_peft_model(tiny_lm):
    peft = pytest.importorskip("peft")
    model = tiny_lm(500)
    n_all = len(list(model.parameters()))
    with pytest.raises(ConfigError, match="no 'lora_' parameters"):
        select_params(model, lora=True)
    cfg = peft.LoraConfig(r=2, target_modules=["dense"], task_type="CAUSAL_LM")
    adapted = peft.get_peft_model(model, cfg).get_base_model()  # LoRA layers inside the model, as the pipeline has it
    names = [n for n, _ in select_params(adapted, lora=True)]
    assert names and all("lora_A" in n or "lora_B" in n for n in names)
    assert len(names) == 2 * len(model.gpt_neox.layers)  # one A and one B per attention output projection
    assert len(select_params(adapted, lora=False)) == n_all + len(names)
