"""A model is identified by its weights: local directories by a cached content hash, hub models by the
commit their revision resolves to. Weights changed in place are never served from the finetune cache
or an index built from the old ones."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rise_exp.core.errors import IndexError_
from rise_exp.models import identity
from tests.helpers import tiny_lm


def save_model(path: Path, tokenizer, seed: int) -> None:
    """Write (or overwrite in place) a tiny HF model directory initialised from ``seed``."""
    tiny_lm(len(tokenizer), layers=1, heads=2, intermediate_size=64, max_position=512, seed=seed).save_pretrained(path)
    tokenizer.save_pretrained(path)


def test_directory_identity_hashes_each_file_once_and_follows_the_bytes(tmp_path, tiny_tokenizer, monkeypatch):
    model_dir, cache = tmp_path / "m", tmp_path / "cache" / "file-sha256.json"
    save_model(model_dir, tiny_tokenizer, seed=0)
    hashed: list[str] = []
    real = identity.file_sha256
    monkeypatch.setattr(identity, "file_sha256", lambda p: hashed.append(Path(p).name) or real(p))
    first = identity.directory_identity(model_dir, cache)
    assert first.startswith("local:m:sha256:") and "model.safetensors" in hashed
    hashed.clear()
    assert identity.directory_identity(model_dir, cache) == first and hashed == []  # cached by stamp
    save_model(model_dir, tiny_tokenizer, seed=1)  # new weights, same names and sizes
    changed = identity.directory_identity(model_dir, cache)
    assert changed != first and "model.safetensors" in hashed
    save_model(model_dir, tiny_tokenizer, seed=0)  # the old weights again: the old identity
    assert identity.directory_identity(model_dir, cache) == first


def test_hub_identity_is_the_resolved_commit(tmp_path):
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "models--org--tiny"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    (repo / "snapshots" / commit).mkdir(parents=True)
    (repo / "snapshots" / commit / "config.json").write_text("{}")
    assert identity.hub_identity("org/tiny", None, hub_cache=tmp_path) == f"hub:org/tiny@{commit}"
    assert identity.hub_identity("org/tiny", "v2", hub_cache=tmp_path) == "hub:org/tiny@v2 (unresolved revision)"
    assert identity.hub_identity("org/other", commit, hub_cache=tmp_path) == f"hub:org/other@{commit}"


def test_weights_changed_in_place_are_never_reused(tmp_path, tiny_tokenizer):
    from rise_exp.run.config import RunConfig, compose
    from rise_exp.run.pipeline import prepare
    from rise_exp.run.runner import build_on

    model_dir = tmp_path / "weights"
    save_model(model_dir, tiny_tokenizer, seed=0)
    run = RunConfig.from_cfg(
        compose(
            [
                "model.source=local",
                f"model.hub_id={model_dir}",
                "model.name=local-tiny",
                "task.n_train=40",
                "task.n_queries=4",
                "finetune.epochs=1",
                "logger=none",
                f"paths.cache_dir={tmp_path / 'cache'}",
                f"method.index.dir={tmp_path / 'index'}",
                "method.kr=16",
                "method.kh=16",
                "method.kg=8",
            ]
        )
    )
    (tmp_path / "run1").mkdir()
    first = prepare(run, tmp_path / "run1")
    assert not first.finetune.cached and first.ctx.model_id.startswith("local:weights:sha256:")
    used = json.loads((tmp_path / "run1" / "model.json").read_text())  # provenance: the finetuned weights
    assert used["model_path"] == str(first.finetune.final_dir) and used["model_id"] == first.ctx.model_id
    build_on(run.method, first.ctx, first.task.train)
    again = prepare(run, tmp_path / "run2")
    assert again.finetune.cached and again.ctx.model_id == first.ctx.model_id  # unchanged weights: reused

    save_model(model_dir, tiny_tokenizer, seed=1)  # replaced in place: same path, same file names
    changed = prepare(run, tmp_path / "run3")
    assert not changed.finetune.cached, "a finetune of the old weights was reused"
    assert changed.finetune.final_dir.parent != first.finetune.final_dir.parent
    assert changed.ctx.model_id != first.ctx.model_id
    with pytest.raises(IndexError_, match="model: 'local:weights:sha256:.*method.index.reuse=false"):
        build_on(run.method, changed.ctx, changed.task.train)
