"""EK-FAC's memory after a LoRA finetune: the modules come from the adapted model (each adapted layer's base
layer, LoRA A ``in -> r`` and B ``r -> out``, equal to peft's), ``method.modules=lora_`` counts the adapter's
factors (equal to kronfluence's fitted ones) and gradients, hand-computed on a tiny config, and admission uses
them."""

from __future__ import annotations

import pytest
import torch

from rise_exp.config.finetune import FinetuneConfig
from rise_exp.config.model import ModelConfig
from rise_exp.config.trainer import TrainerConfig
from rise_exp.data.records import Record
from rise_exp.methods.base import MethodContext
from rise_exp.methods.ekfac.config import EKFACConfig
from rise_exp.methods.memory_model import ekfac_covariance_bytes, ekfac_factor_bytes, ekfac_peak, estimate
from rise_exp.models.catalogue import adapted_linear_shapes, linear_shapes, lora_parameter_count
from rise_exp.run.admission import needs
from rise_exp.run.config import RunConfig, compose
from tests.helpers import tiny_lm

LORA_R2 = FinetuneConfig(epochs=1, lora=True, lora_r=2)


def facts(vocab: int = 300) -> ModelConfig:
    base = dict(layers=2, hidden_size=32, heads=4, intermediate_size=64, vocab_size=vocab, max_position=128)
    return ModelConfig(name="tiny-test", source="embedded", arch="gpt_neox", **base)


def adapted(vocab: int, finetune: FinetuneConfig) -> torch.nn.Module:
    """A tiny GPT-NeoX with the finetune's LoRA adapter, as the training code makes it and a loaded adapter
    checkpoint gives it to the methods (peft's base model, LoRA layers unmerged)."""
    pytest.importorskip("peft")
    from rise_exp.training.recipe import with_lora

    model = tiny_lm(vocab, layers=2, hidden_size=32, heads=4, intermediate_size=64)
    return with_lora(model, finetune).get_base_model()


@pytest.mark.parametrize("targets", ["all-linear", "query_key_value,dense_h_to_4h"])
def test_the_adapted_linear_modules_from_the_facts_are_peft_s(targets):
    ft = FinetuneConfig(epochs=1, lora=True, lora_r=2, lora_targets=targets)
    model = adapted(300, ft)
    built = [
        (n, mod.out_features, mod.in_features, mod.bias is not None)
        for n, mod in model.named_modules()
        if isinstance(mod, torch.nn.Linear)
    ]
    assert sorted(adapted_linear_shapes(facts(), ft)) == sorted(built)
    assert lora_parameter_count(facts(), ft) == sum(p.numel() for n, p in model.named_parameters() if "lora_" in n)


def test_without_a_lora_finetune_the_modules_are_the_models():
    assert adapted_linear_shapes(facts(), FinetuneConfig(epochs=1)) == linear_shapes(facts())
    assert adapted_linear_shapes(facts(), FinetuneConfig(epochs=0, lora=True)) == linear_shapes(facts())


def test_a_tiny_lora_configs_ekfac_peak_is_the_hand_computed_sum():
    """GPT-NeoX, L = 1, d = 4, f = 8, V = 10, float32 (P = 260), LoRA r = 2 on every linear layer but the head.
    LoRA modules (s, a): QKV A (2, 4) B (12, 2); dense A (2, 4) B (4, 2); h_to_4h A (2, 4) B (8, 2); 4h_to_h
    A (2, 8) B (4, 2): 96 adapter parameters. Factors a^2 + s^2 + a + s + s a: 34 + 186 + 34 + 34 + 34 + 94 + 94
    + 34 = 544; covariances a^2 + s^2: 20 + 148 + 20 + 20 + 20 + 68 + 68 + 20 = 384."""
    m = ModelConfig(
        name="hand", source="embedded", arch="gpt_neox", layers=1, hidden_size=4, heads=2, intermediate_size=8,
        vocab_size=10, max_position=8,
    )  # fmt: skip
    cfg = EKFACConfig(modules="lora_", factor_batch=1, train_batch=2, query_batch=3)
    assert lora_parameter_count(m, LORA_R2) == 96
    assert ekfac_factor_bytes(m, cfg, LORA_R2) == 4 * 544
    assert ekfac_covariance_bytes(m, cfg, LORA_R2) == 4 * 384
    # weights and the float32 adapter twice, 2 (4 x 260 + 4 x 96); factors; query gradients 4 Q sum s a = 4 x 3 x 96;
    # two 2-token rows' backward (2 x 864, as in test_reference_memory) and one module's per-row gradients 4 x 2 x 24
    weights, factors, queries, rows = 2 * (1040 + 384), 4 * (544 + 384), 4 * 3 * 96, 2 * 864 + 4 * 2 * 24
    assert ekfac_peak(m, 2, cfg, LORA_R2) == weights + factors + queries + rows == 9632
    assert estimate(m, 2, ekfac=cfg, finetune=LORA_R2).peaks["EK-FAC"] == 9632
    assert ekfac_factor_bytes(m, cfg) == 0  # the model as loaded has no LoRA layer: nothing to track


def test_ekfac_lora_factor_bytes_equal_kronfluences_fitted_factors(tmp_path, tiny_tokenizer, sentences):
    from rise_exp.methods.registry import config_class
    from rise_exp.run.runner import build_on

    model = adapted(len(tiny_tokenizer), LORA_R2)
    pool = [Record(id=f"t{i}", text=s) for i, s in enumerate(sentences[:8])]
    ctx = MethodContext(
        model=model, tokenizer=tiny_tokenizer, work_dir=tmp_path, index_root=tmp_path,
        trainer=TrainerConfig(accelerator="cpu", devices=1), max_length=32, seed=0,
    )  # fmt: skip
    cfg = config_class("ekfac").from_mapping({"name": "ekfac", "modules": "lora_"})
    method = build_on(cfg, ctx, pool).method
    stored = sum(
        t.numel() * t.element_size()
        for per_module in method.factors().values()
        for t in per_module.values()
        if t.dim() >= 1 and t.numel() > 1  # counts of processed tokens are single numbers
    )
    assert stored == ekfac_factor_bytes(facts(len(tiny_tokenizer)), cfg, LORA_R2) > 0


def test_admission_counts_the_adapters_factors_for_modules_lora():
    run = RunConfig.from_cfg(compose(["model=pythia-1b", "finetune=lora", "method=ekfac", "method.modules=lora_"]))
    (need,) = [n for n in needs(run) if n.method is not None]
    assert need.total == ekfac_peak(run.model, run.data.max_length, run.method, run.finetune)
    assert need.total > ekfac_peak(run.model, run.data.max_length, run.method)  # the model as loaded: no factors
    assert ekfac_factor_bytes(run.model, run.method, run.finetune) > 0


def test_modules_lora_without_a_lora_finetune_is_refused_before_the_load():
    from rise_exp.core.errors import ConfigError
    from rise_exp.run.admission import admit

    with pytest.raises(ConfigError, match=r"^method.modules='lora_' matches no nn.Linear .*finetune=lora\)$"):
        admit(RunConfig.from_cfg(compose(["model=pythia-1b", "finetune=none", "method=ekfac", "method.modules=lora_"])))
    lds = ["model=pythia-1b", "stage=lds", "stage.methods=[rise,ekfac]", "+stage.method_overrides.ekfac.modules=lora_"]
    with pytest.raises(ConfigError, match=r"^stage.method_overrides.ekfac.modules='lora_' matches no"):
        admit(RunConfig.from_cfg(compose([*lds, "finetune=full"])))
    run = RunConfig.from_cfg(compose([*lds, "finetune=lora"]))
    assert needs(run)[-1].settings.modules == "lora_"
