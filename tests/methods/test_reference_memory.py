"""The memory model of EK-FAC and TrackStar: the modules they track come from the architecture facts (equal to
the built model's), EK-FAC's factor bytes equal kronfluence's fitted factors, TrackStar's bytes per row equal
bergson's store, a tiny config's peak equals its hand-computed sum, and admission and ``diagnostic=memory``
use them."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from rise_exp.config.model import ModelConfig
from rise_exp.config.trainer import TrainerConfig
from rise_exp.core.errors import ConfigError
from rise_exp.data.records import Record
from rise_exp.methods.base import MethodContext
from rise_exp.methods.ekfac.config import EKFACConfig
from rise_exp.methods.memory_model import (
    GPU_METHODS,
    bytes_per_row,
    ekfac_covariance_bytes,
    ekfac_factor_bytes,
    ekfac_peak,
    estimate,
    trackstar_peak,
)
from rise_exp.methods.registry import config_class
from rise_exp.methods.trackstar.config import TrackStarConfig
from rise_exp.models.catalogue import linear_shapes
from rise_exp.run.admission import admit
from rise_exp.run.config import RunConfig, compose
from tests.helpers import tiny_lm

GB = 1e9
CPU = TrainerConfig(accelerator="cpu", devices=1)


def facts(arch: str = "gpt_neox", vocab: int = 300, **over) -> ModelConfig:
    base = dict(layers=2, hidden_size=32, heads=4, intermediate_size=64, vocab_size=vocab, max_position=128)
    return ModelConfig(name="tiny-test", source="embedded", arch=arch, **{**base, **over})


@pytest.mark.parametrize("arch,kv", [("gpt_neox", None), ("olmo2", 2)])
def test_the_linear_modules_from_the_facts_are_the_built_models(arch, kv):
    m = facts(arch, kv_heads=kv)
    model = tiny_lm(300, arch=arch, layers=2, hidden_size=32, heads=4, kv_heads=kv, intermediate_size=64)
    built = [
        (n, mod.out_features, mod.in_features, mod.bias is not None)
        for n, mod in model.named_modules()
        if isinstance(mod, torch.nn.Linear)
    ]
    assert sorted(linear_shapes(m)) == sorted(built)


def test_a_tiny_configs_peaks_are_the_hand_computed_sums():
    """GPT-NeoX, L = 1, d = 4, f = 8, V = 10, float32, rows of l = 2 tokens. Linear modules (out s, in a + bias):
    QKV (12, 5), dense (4, 5), h_to_4h (8, 5), 4h_to_h (4, 9), head (10, 4); P = 172 (block) + 88 = 260."""
    m = ModelConfig(
        name="hand", source="embedded", arch="gpt_neox", layers=1, hidden_size=4, heads=2, intermediate_size=8,
        vocab_size=10, max_position=8,
    )  # fmt: skip
    # factors per module, a^2 + s^2 + a + s + s a: 25+144+17+60, 25+16+9+20, 25+64+13+40, 81+16+13+36, 16+100+14+40
    assert ekfac_factor_bytes(m, EKFACConfig()) == 4 * (246 + 70 + 142 + 146 + 170) == 4 * 774
    assert ekfac_factor_bytes(m, EKFACConfig(strategy="diagonal")) == 4 * (60 + 20 + 40 + 36 + 40)
    assert ekfac_factor_bytes(m, EKFACConfig(strategy="kfac")) == 4 * (186 + 50 + 102 + 110 + 130)
    assert ekfac_covariance_bytes(m, EKFACConfig()) == 4 * (169 + 41 + 89 + 97 + 116) == 4 * 512
    # one 2-token row's backward: 17 b d l L + (2b + 8) l V = 544 + 320 = 864
    cfg = EKFACConfig(factor_batch=1, train_batch=2, query_batch=3)
    weights, factors, queries, rows = 2 * 4 * 260, 4 * (774 + 512), 4 * 3 * 196, 2 * 864 + 4 * 2 * 60
    assert ekfac_peak(m, 2, cfg) == weights + factors + queries + rows == 11784
    # TrackStar, k = 2, B = 1, trunk weights P_t = 48 + 16 + 32 + 32 = 128: weights 4 P, moments 4 P_t, then the
    # larger of accumulating them ((4 + 4) P_t + 864) and collecting (864 + 4 x 48 + 4 k (16 + 8 + 12 + 12))
    ts = TrackStarConfig(projection_dim=2, batch_rows=1)
    assert trackstar_peak(m, 2, ts) == 4 * 260 + 4 * 128 + max(8 * 128 + 864, 864 + 192 + 8 * 48) == 3440
    assert bytes_per_row(m, trackstar=ts)["TrackStar"] == 4 * 4 * 4  # four trunk modules, k^2, the weights' float32


@pytest.fixture(scope="module")
def built_reference(tmp_path_factory, tiny_tokenizer, sentences):
    """EK-FAC and TrackStar built on one tiny GPT-NeoX (two blocks) and 12 rows."""
    tmp = tmp_path_factory.mktemp("refmem")
    model = tiny_lm(len(tiny_tokenizer), layers=2, hidden_size=32, heads=4, intermediate_size=64)
    pool = [Record(id=f"t{i}", text=s) for i, s in enumerate(sentences[:12])]
    out = {}
    for name, settings in (("ekfac", {"strategy": "ekfac"}), ("trackstar", {"projection_dim": 4})):
        ctx = MethodContext(
            model=model, tokenizer=tiny_tokenizer, work_dir=tmp / name, index_root=tmp / name, trainer=CPU,
            max_length=32, seed=0,
        )  # fmt: skip
        from rise_exp.run.runner import build_on

        cfg = config_class(name).from_mapping({"name": name, **settings})
        out[name] = (cfg, build_on(cfg, ctx, pool).method)
    return facts(vocab=len(tiny_tokenizer)), len(pool), out


def test_ekfac_factor_bytes_equal_kronfluences_fitted_factors(built_reference):
    m, _, out = built_reference
    cfg, method = out["ekfac"]
    stored = sum(
        t.numel() * t.element_size()
        for per_module in method.factors().values()
        for t in per_module.values()
        if t.dim() >= 1 and t.numel() > 1  # counts of processed tokens are single numbers
    )
    assert stored == ekfac_factor_bytes(m, cfg)


def test_trackstar_bytes_per_row_equal_bergsons_store(built_reference):
    m, rows, out = built_reference
    cfg, method = out["trackstar"]
    assert method.index_bytes == rows * bytes_per_row(m, trackstar=cfg)["TrackStar"]


def run_config(*overrides: str) -> RunConfig:
    return RunConfig.from_cfg(compose(list(overrides)))


def test_admission_consults_ekfac_and_trackstar():
    with pytest.raises(ConfigError, match=r"method=ekfac needs .*method.factor_batch=1") as err:
        admit(run_config("model=olmo-7b", "finetune=none", "method=ekfac"), capacity=("GPU", 80 * GB))
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match=r"method=trackstar needs .*method.batch_rows=1"):
        admit(run_config("model=olmo-32b", "finetune=none", "method=trackstar"), capacity=("GPU", 80 * GB))
    admit(run_config("model=pythia-160m", "finetune=none", "method=ekfac"), capacity=("GPU", 80 * GB))
    admit(run_config("model=pythia-1b", "finetune=none", "method=trackstar"), capacity=("GPU", 80 * GB))


def test_diagnostic_memory_lists_ekfac_and_trackstar():
    from rise_exp.diagnostics.memory import extrapolate

    est = extrapolate(SimpleNamespace(settings=SimpleNamespace(extrapolate=["pythia-70m", "olmo-1b"], seq_len=512)))
    assert {"EK-FAC GB", "TrackStar GB", "TrackStar bytes/row"} <= set(est.columns)
    assert "EK-FAC" in GPU_METHODS and "TrackStar" in GPU_METHODS
    e = estimate(RunConfig.from_cfg(compose(["model=olmo-1b"])).model, 512)
    assert est.loc[1, "EK-FAC GB"] == e.peaks["EK-FAC"] / 1e9 > 2 * e.weight_bytes / 1e9
