"""method=ekfac (kronfluence): scores equal the damped inverse-Fisher influence formed densely, and the
factors are cached by the same identity rules as an index."""

from __future__ import annotations

import copy
import sys

import pytest
import torch

pytest.importorskip("kronfluence")

from rise_exp.core.errors import ConfigError  # noqa: E402
from rise_exp.data.encoding import collate, rows_hash  # noqa: E402
from rise_exp.methods.base import MethodContext  # noqa: E402
from rise_exp.methods.common import batch_row_loss, encode_all, pad_id  # noqa: E402
from rise_exp.methods.ekfac.method import EKFAC, MARKER, tracked_modules  # noqa: E402

DAMPING = 0.05


@pytest.fixture()
def tiny(tiny_lm, word_tokenizer):
    """A float64 one-layer GPT-NeoX small enough to form every module's Fisher (d = 8, vocab 19)."""
    return tiny_lm(len(word_tokenizer), hidden_size=8, heads=2, intermediate_size=16, layers=1).double()


def make(model, tokenizer, tmp_path, model_id="tiny", **settings) -> EKFAC:
    ctx = MethodContext(
        model=model, tokenizer=tokenizer, work_dir=tmp_path, index_root=tmp_path / "indexes", model_id=model_id
    )
    return EKFAC({"damping": DAMPING, "dtype": "float64", "factor_batch": 4, **settings}, ctx)


def module_grads(model, rows, pad, modules) -> list[dict[str, torch.Tensor]]:
    """Per row, each module's ``[out, in (+1 bias column)]`` gradient of the row's mean token loss (autograd)."""
    named = dict(model.named_modules())
    out = []
    for row in rows:
        loss = batch_row_loss(model, collate([row], pad)).sum()
        grads = {}
        for name in modules:
            mod = named[name]
            params = [mod.weight] + ([mod.bias] if mod.bias is not None else [])
            g = torch.autograd.grad(loss, params, retain_graph=True)
            grads[name] = torch.cat([g[0], g[1][:, None]], dim=1) if len(g) == 2 else g[0]
        out.append(grads)
    return out


def dense_influence(gq, gx, fisher: dict[str, torch.Tensor], damping: float) -> torch.Tensor:
    """``sum_m vec g_m(q)^T (F_m + damping I)^-1 vec g_m(x)`` with each ``F_m`` a dense matrix -> ``[Q, N]``."""
    out = torch.zeros(len(gq), len(gx), dtype=torch.float64)
    for name, f in fisher.items():
        q = torch.stack([g[name].reshape(-1) for g in gq])
        x = torch.stack([g[name].reshape(-1) for g in gx])
        solved = torch.linalg.solve(f + damping * torch.eye(f.shape[0], dtype=f.dtype), q.T).T
        out += solved @ x.T
    return out


def fisher_from_factors(factors, strategy: str) -> dict[str, torch.Tensor]:
    """``F_m = (Q_S (x) Q_A) diag(Lambda_m) (Q_S (x) Q_A)^T`` from kronfluence's stored factors."""
    out = {}
    for name, q_a in factors["activation_eigenvectors"].items():
        q_s = factors["gradient_eigenvectors"][name]
        if strategy == "ekfac":
            lam = factors["lambda_matrix"][name] / factors["num_lambda_processed"][name]
        else:
            lam = torch.outer(factors["gradient_eigenvalues"][name], factors["activation_eigenvalues"][name])
        k = torch.kron(q_s.double(), q_a.double())
        out[name] = k @ torch.diag(lam.reshape(-1).double()) @ k.T
    return out


@pytest.mark.parametrize("strategy", ["ekfac", "kfac"])
def test_scores_equal_the_damped_inverse_fisher_formed_from_the_same_factors(
    strategy, tiny, word_tokenizer, make_records, tmp_path
):
    train, queries = make_records(10, 0), make_records(3, 1)
    method = make(tiny, word_tokenizer, tmp_path, strategy=strategy)
    method.build(train)
    scores = method.score(queries)
    modules = tracked_modules(tiny, "")
    pad = pad_id(word_tokenizer)
    gx = module_grads(tiny, encode_all(train, method.ctx), pad, modules)
    gq = module_grads(tiny, encode_all(queries, method.ctx), pad, modules)
    fisher = fisher_from_factors(method.factors(), strategy)
    assert sorted(fisher) == sorted(modules)
    ref = dense_influence(gq, gx, fisher, DAMPING)
    assert scores.shape == (3, 10)
    torch.testing.assert_close(torch.from_numpy(scores).double(), ref, rtol=1e-5, atol=1e-5 * ref.abs().max().item())


def test_diagonal_empirical_fisher_equals_the_mean_squared_gradient(tiny, word_tokenizer, make_records, tmp_path):
    """No factor is read back: the diagonal empirical Fisher is formed from autograd gradients alone."""
    train, queries = make_records(8, 2), make_records(2, 3)
    method = make(tiny, word_tokenizer, tmp_path, strategy="diagonal", empirical_fisher=True, modules="mlp|lm_head")
    method.build(train)
    modules = tracked_modules(tiny, "mlp|lm_head")
    assert len(modules) == 3
    pad = pad_id(word_tokenizer)
    gx = module_grads(tiny, encode_all(train, method.ctx), pad, modules)
    gq = module_grads(tiny, encode_all(queries, method.ctx), pad, modules)
    fisher = {m: torch.diag(torch.stack([g[m].reshape(-1) ** 2 for g in gx]).mean(0)) for m in modules}
    ref = dense_influence(gq, gx, fisher, DAMPING)
    torch.testing.assert_close(
        torch.from_numpy(method.score(queries)).double(), ref, rtol=1e-5, atol=1e-5 * ref.abs().max().item()
    )


def test_factors_are_reused_refitted_and_keyed_like_an_index(tiny, word_tokenizer, make_records, tmp_path, caplog):
    train, queries = make_records(6, 0), make_records(2, 1)
    caplog.set_level("WARNING")
    first = make(tiny, word_tokenizer, tmp_path)
    first.build(train)
    assert "refitting" not in caplog.text
    adir = first.factors_path.parent
    assert (adir / MARKER).is_file() and first.index_bytes > 0
    stamp = {p.name: p.stat().st_mtime_ns for p in first.factors_path.glob("*.safetensors")}
    expected = first.score(queries)
    assert sorted(p.name for p in adir.iterdir()) == [MARKER, "factors_factors"]  # scores are not kept

    # the same model, tokens and factor settings: reused (scoring settings are not part of the key)
    again = make(tiny, word_tokenizer, tmp_path, train_batch=3, query_low_rank=None)
    again.build(train)
    assert again.factors_path == first.factors_path
    assert stamp == {p.name: p.stat().st_mtime_ns for p in again.factors_path.glob("*.safetensors")}
    assert (again.score(queries) == expected).all()
    with_damping = make(tiny, word_tokenizer, tmp_path, damping=1.0)
    with_damping.build(train)
    assert with_damping.factors_path == first.factors_path

    # other tokens, other model, other factor settings: other entries (the key alone, no fit needed)
    def entry(method, rows) -> str:
        return method.analysis_dir(rows_hash(encode_all(rows, method.ctx))).name

    assert entry(first, train) == adir.name
    others = [
        entry(make(tiny, word_tokenizer, tmp_path, **settings), train)
        for settings in ({"strategy": "kfac"}, {"seed": 7}, {"modules": "mlp"}, {"empirical_fisher": True})
    ]
    others += [entry(make(tiny, word_tokenizer, tmp_path, model_id="other"), train)]
    others += [entry(make(tiny, word_tokenizer, tmp_path), train[:5])]
    others += [entry(make(copy.deepcopy(tiny).float(), word_tokenizer, tmp_path), train)]
    assert len({adir.name, *others}) == 8

    # an unsealed entry (a killed fit) and reuse=false are refitted, never read
    (adir / MARKER).unlink()
    refit = make(tiny, word_tokenizer, tmp_path)
    refit.build(train)
    assert "an unfinished fit" in caplog.text and (adir / MARKER).is_file()
    assert (refit.score(queries) == expected).all()  # the same seed samples the same Fisher labels
    fresh = make(tiny, word_tokenizer, tmp_path, reuse=False)
    fresh.build(train)
    assert "method.reuse=false" in caplog.text


def test_the_run_model_is_left_unwrapped(tiny, word_tokenizer, make_records, tmp_path):
    before = [type(m) for m in tiny.modules()]
    make(tiny, word_tokenizer, tmp_path).build(make_records(4, 0))
    assert [type(m) for m in tiny.modules()] == before
    assert all(p.requires_grad for p in tiny.parameters())


def test_bad_modules_and_a_missing_library_are_one_line(tiny, word_tokenizer, make_records, tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="method.modules='nope' matches no nn.Linear module"):
        make(tiny, word_tokenizer, tmp_path, modules="nope").build(make_records(4, 0))
    monkeypatch.setitem(sys.modules, "kronfluence", None)
    with pytest.raises(ConfigError, match=r"method=ekfac needs kronfluence .*pip install 'rise-exp\[ekfac\]'"):
        make(tiny, word_tokenizer, tmp_path)


def test_lora_modules_give_the_damped_inverse_fisher_of_the_adapter_gradients(
    tiny, word_tokenizer, make_records, tmp_path
):
    """``method.modules=lora_`` tracks only a PEFT adapter's LoRA layers (the SmolLM2 LoRA finetunes)."""
    peft = pytest.importorskip("peft")
    config = peft.LoraConfig(r=2, lora_alpha=4, target_modules=["query_key_value", "dense_h_to_4h"])
    model = peft.get_peft_model(tiny, config).eval()
    torch.manual_seed(0)
    for name, p in model.named_parameters():
        if "lora_B" in name:  # LoRA starts B at zero; a finetuned adapter does not
            torch.nn.init.normal_(p, std=0.1)
    train, queries = make_records(8, 0), make_records(2, 1)
    method = make(model, word_tokenizer, tmp_path, modules="lora_")
    method.build(train)
    modules = tracked_modules(model, "lora_")
    assert len(modules) == 4 and all("lora_" in m for m in modules)
    pad = pad_id(word_tokenizer)
    gx = module_grads(model, encode_all(train, method.ctx), pad, modules)
    gq = module_grads(model, encode_all(queries, method.ctx), pad, modules)
    ref = dense_influence(gq, gx, fisher_from_factors(method.factors(), "ekfac"), DAMPING)
    torch.testing.assert_close(
        torch.from_numpy(method.score(queries)).double(), ref, rtol=1e-5, atol=1e-5 * ref.abs().max().item()
    )
