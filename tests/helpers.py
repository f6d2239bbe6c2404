"""What many tests share and that is not a fixture: the one word list, the one builder of tiny models, the
one list of tiny-run overrides and the one way to run the command line in a subprocess.

Fixtures built on these live in ``tests/conftest.py`` (``sentences``, ``tiny_tokenizer``, ``word_tokenizer``,
``make_records``, ``tiny_lm``, ``tiny_neox``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

#: The repository root (the command line runs from here by default).
ROOT = Path(__file__).resolve().parent.parent

#: The one word list: random sentences for the trained BPE tokenizer and records for the word-level one.
WORDS = (
    "the a of to bank loan rate stock market interest patient doctor dose blood heart fever "
    "howdy question answer ship star galaxy robot space planet city river mountain"
).split()

#: The tests' tiny model: a one-block GPT-NeoX (d = 32) on a BPE of at most 300 tokens (the model settings on
#: top of the embedded default, conf/model/tiny-pythia.yaml).
TINY_MODEL_FACTS = {"layers": 1, "hidden_size": 32, "heads": 2, "intermediate_size": 64, "vocab_size": 300}
#: The same as Hydra overrides.
TINY_MODEL = tuple(f"model.{key}={value}" for key, value in TINY_MODEL_FACTS.items())


#: The protocol's fields in every attribution run's metrics.json.
RETRIEVAL_FIELDS = frozenset(
    {
        "auprc@5",
        "auprc@10",
        "auprc@50",
        "auroc@10",
        "p@10",
        "num_train",
        "num_queries",
        "index_seconds",
        "index_bytes",
        "peak_rss_mb",
    }
)


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def tiny_run(*overrides: str, epochs: int | None = 1) -> list[str]:
    """The Hydra overrides of a tiny run: :data:`TINY_MODEL`, ``epochs`` finetuning epochs (``None``: those of
    the chosen finetune option) and no logger, then ``overrides``; a later value of a key replaces the earlier
    one in place (``tiny_run("model.layers=2", "logger=csv")``)."""
    base = [*TINY_MODEL, *([f"finetune.epochs={epochs}"] if epochs is not None else []), "logger=none"]
    out: list[str] = []
    for override in [*base, *overrides]:
        keys = [_key(o) for o in out]
        if _key(override) in keys:
            out[keys.index(_key(override))] = override
        else:
            out.append(override)
    return out


def model_config(name: str, **over: Any) -> Any:
    """The typed settings of conf/model/<name>.yaml (composed through Hydra), with overrides."""
    from omegaconf import OmegaConf

    from rise_exp.config.model import ModelConfig
    from rise_exp.run.config import compose

    node = compose([f"model={name}"]).model
    return ModelConfig.from_mapping({**OmegaConf.to_container(node, resolve=True), **over})


def tiny_lm(
    vocab: int = 300,
    *,
    arch: str = "gpt_neox",
    layers: int = 2,
    hidden_size: int = 32,
    heads: int = 4,
    kv_heads: int | None = None,
    intermediate_size: int | None = None,
    max_position: int = 128,
    seed: int = 0,
    dtype: str = "float32",
    attn: str | None = None,
) -> Any:
    """A seeded, randomly initialised tiny causal LM in eval mode.

    GPT-NeoX and OLMo 2 are the embedded models of the package (a :class:`~rise_exp.config.model.ModelConfig`
    built by :func:`~rise_exp.models.embedded.build_tiny_model`); any other ``arch`` (``llama``) is built from
    ``transformers.AutoConfig`` with the same facts. ``intermediate_size`` defaults to ``4 * hidden_size``;
    ``attn`` picks an attention implementation (``"eager"``).
    """
    import torch

    from rise_exp.config.model import EMBEDDED_ARCHES, ModelConfig
    from rise_exp.models.embedded import build_tiny_model

    if arch in EMBEDDED_ARCHES:
        spec = ModelConfig(
            name="tiny-test",
            source="embedded",
            arch=arch,
            dtype=dtype,
            layers=layers,
            hidden_size=hidden_size,
            heads=heads,
            kv_heads=kv_heads,
            intermediate_size=intermediate_size,
            vocab_size=vocab,
            max_position=max_position,
            init_seed=seed,
        )
        model = build_tiny_model(spec, vocab_size=vocab)
    else:
        from transformers import AutoConfig, AutoModelForCausalLM

        torch.manual_seed(seed)
        cfg = AutoConfig.for_model(
            arch,
            vocab_size=vocab,
            hidden_size=hidden_size,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            num_key_value_heads=kv_heads or heads,
            intermediate_size=intermediate_size or 4 * hidden_size,
            max_position_embeddings=max_position,
        )
        model = AutoModelForCausalLM.from_config(cfg).to(getattr(torch, dtype))
    if attn is not None:
        model.set_attn_implementation(attn)
    return model.eval()


def cpu_trainer(**kw: Any) -> Any:
    """A one-process CPU Lightning Trainer that logs, checkpoints and prints nothing (``kw`` on top)."""
    import lightning.pytorch as pl

    return pl.Trainer(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        **kw,
    )


def shard_bytes(root: Path) -> dict[str, bytes]:
    """Every file of an index directory but its manifest (which holds timestamps), by name."""
    return {p.name: p.read_bytes() for p in sorted(Path(root).iterdir()) if p.name != "manifest.json"}


def cli_env(cache: Path | None = None, **extra: str) -> dict[str, str]:
    """The environment of a command-line subprocess: this checkout first on the path, W&B offline, no hub
    downloads, ``RISE_EXP_CACHE=cache`` when given, then ``extra``."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), WANDB_MODE="offline", HF_HUB_OFFLINE="1")
    if cache is not None:
        env["RISE_EXP_CACHE"] = str(cache)
    env.update(extra)
    return env


def cli_args(args: Iterable[str], module: str = "rise_exp") -> list[str]:
    return [sys.executable, "-m", module, *args]


def run_cli(
    *args: str,
    cache: Path | None = None,
    cwd: Path = ROOT,
    module: str = "rise_exp",
    timeout: float = 600,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess:
    """``python -m <module> <args>`` to completion (text output captured); see :func:`cli_env`."""
    return subprocess.run(
        cli_args(args, module),
        cwd=cwd,
        env=env if env is not None else cli_env(cache),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_cli(*args: str, cache: Path | None = None, cwd: Path = ROOT, merge_stderr: bool = False) -> subprocess.Popen:
    """``python -m rise_exp <args>`` started in the background (text pipes; stderr into stdout when
    ``merge_stderr``)."""
    return subprocess.Popen(
        cli_args(args),
        cwd=cwd,
        env=cli_env(cache),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT if merge_stderr else subprocess.PIPE,
        text=True,
    )


class BarRecorder:
    """Stands in for a progress bar (``core.progress.bar``): the total and name it was opened with, every
    update, and whether it was closed."""

    def __init__(self, total: int | None, desc: str, **_: object) -> None:
        self.total, self.desc, self.updates, self.closed = total, desc, [], False

    def update(self, n: int = 1) -> None:
        self.updates.append(n)

    def close(self) -> None:
        self.closed = True


def record_bars(monkeypatch: Any) -> list[BarRecorder]:
    """Every bar ``core.progress.bar`` opens from now on, recorded (in order) instead of drawn."""
    from rise_exp.core import progress

    bars: list[BarRecorder] = []
    monkeypatch.setattr(progress, "bar", lambda *a, **k: bars.append(BarRecorder(*a, **k)) or bars[-1])
    return bars
