"""RiseConfig validation and clear errors on bad models and rows."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from transformers import GPTNeoXForCausalLM

from rise_exp.core.errors import ConfigError, DataError
from rise_exp.data.encoding import EncodedRow
from rise_exp.methods.rise import RiseConfig, RiseHead, compute_signatures
from tests.helpers import tiny_lm


def tiny() -> GPTNeoXForCausalLM:
    return tiny_lm(120, layers=1, hidden_size=16, heads=2, intermediate_size=32, max_position=2048)


def test_defaults_and_dims() -> None:
    cfg = RiseConfig()
    assert (cfg.kr, cfg.kh, cfg.kg, cfg.tau, cfg.rho, cfg.topk, cfg.min_keep, cfg.seed) == (
        128,
        128,
        64,
        0.1,
        0.92,
        256,
        4,
        42,
    )
    assert cfg.signature_dim == 128 * 128 + 64 * 128
    assert RiseConfig(fusion="rh+gh+rg").signature_dim == 128 * 128 + 64 * 128 + 128 * 64
    assert RiseConfig.from_mapping(cfg.to_dict()) == cfg


@pytest.mark.parametrize(
    "key,value,match",
    [
        ("kr", 0, "kr"),
        ("kh", -1, "kh"),
        ("kg", 2.5, "kg"),
        ("topk", 0, "topk"),
        ("rho", 0.0, "rho"),
        ("rho", 1.5, "rho"),
        ("tau", 0.0, "tau"),
        ("fusion", "rh+xx", "fusion"),
        ("chunk_overlap", 256, "chunk_overlap"),
        ("max_tokens_per_batch", 0, "max_tokens_per_batch"),
        ("dtype", "int8", "dtype"),
        ("sketch", "gauss", "sketch"),
    ],
)
def test_bad_values_name_the_setting(key: str, value: object, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        RiseConfig.from_mapping({key: value})


def test_unknown_key() -> None:
    with pytest.raises(ConfigError, match="Kr"):
        RiseConfig.from_mapping({"Kr": 64})


def test_non_linear_head_is_rejected() -> None:
    m = tiny()

    class Wrapped(nn.Module):
        def __init__(self, inner: nn.Linear) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.inner(x)

    m.set_output_embeddings(Wrapped(m.get_output_embeddings()))
    with pytest.raises(ConfigError, match="nn.Linear"):
        RiseHead.from_model(m, RiseConfig())


def test_logits_that_differ_from_the_head_are_rejected() -> None:
    m = tiny()
    m.get_output_embeddings().register_forward_hook(lambda mod, inp, out: 30.0 * torch.tanh(out / 30.0) + 1.0)
    row = EncodedRow(row=0, input_ids=np.arange(1, 9), target_mask=np.r_[False, np.ones(7, bool)])
    with pytest.raises(ConfigError, match="differ"):
        compute_signatures(m, 0, [row], RiseConfig(kr=8, kh=8, kg=8))
    # with the check switched off it runs
    out = compute_signatures(m, 0, [row], RiseConfig(kr=8, kh=8, kg=8, check_logits=False))
    assert out.shape == (1, 8 * 8 + 8 * 8) and np.isclose(np.linalg.norm(out[0]), 1.0, atol=1e-5)


def test_row_without_targets_is_a_data_error() -> None:
    m = tiny()
    ok = EncodedRow(row=0, input_ids=np.arange(1, 9), target_mask=np.r_[False, np.ones(7, bool)])
    empty = EncodedRow(row=1, input_ids=np.arange(1, 9), target_mask=np.zeros(8, bool))
    with pytest.raises(DataError, match="row 1"):
        compute_signatures(m, 0, [ok, empty], RiseConfig(kr=8, kh=8, kg=8))
    with pytest.raises(DataError, match="distinct"):
        compute_signatures(m, 0, [ok, ok], RiseConfig(kr=8, kh=8, kg=8))
