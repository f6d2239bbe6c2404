"""Fault injection on every kind of cache entry: each damage of :mod:`damage_kit` (delete, truncate,
random bytes, 4 KiB of garbage, valid-looking noise, a same-stamp replacement) is caught before a number is
computed; the entry is rebuilt with a logged warning (to the clean entry's bytes) or, for a checkpoint
the run cannot rebuild, refused in one line."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from rise_exp.config.finetune import FinetuneConfig
from rise_exp.config.model import ModelConfig
from rise_exp.config.trainer import TrainerConfig
from rise_exp.core import sealed
from rise_exp.core.errors import ConfigError
from rise_exp.data.records import Record
from rise_exp.models.embedded import prepare_embedded
from rise_exp.models.loading import load_pretrained
from rise_exp.training.cached_finetune import run_finetune
from tests.reliability.damage_kit import DAMAGES

EMBEDDED = ModelConfig(
    name="tiny-pythia", source="embedded", arch="gpt_neox", layers=1, hidden_size=32, heads=2,
    intermediate_size=64, vocab_size=300, max_position=256,
)  # fmt: skip
FINETUNE = FinetuneConfig(epochs=2, lr=3e-3, max_tokens_per_batch=512, max_length=256, mask_prompt=True)


def entry_bytes(root: Path) -> dict[str, bytes]:
    """Every file of a sealed directory entry but its seal, by relative name."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != sealed.SEAL
    }


def warned(caplog, text: str) -> bool:
    return any(r.levelno == logging.WARNING and text in r.getMessage() for r in caplog.records)


# ------------------------------------------------------------------ the seal itself
@pytest.mark.parametrize("damage", DAMAGES)
@pytest.mark.parametrize("victim", ["weights.npy", "config.json"])
def test_every_damage_breaks_the_seal(tmp_path, damage, victim):
    root = tmp_path / "entry"
    root.mkdir()
    np.save(root / "weights.npy", np.arange(2000, dtype=np.float32))
    (root / "config.json").write_text('{"hidden": 32, "layers": 2, "name": "tiny"}')
    sealed.seal(root)
    assert sealed.problem(root) is None
    DAMAGES[damage](root / victim)
    assert sealed.problem(root) is not None


def test_an_entry_without_its_seal_is_not_trusted(tmp_path):
    (tmp_path / "a.txt").write_text("x")
    assert "no seal" in sealed.problem(tmp_path)


# ------------------------------------------------------------------ embedded tokenizer + model
@pytest.fixture(scope="module")
def clean_embedded(tmp_path_factory, sentences):
    cache = tmp_path_factory.mktemp("embedded")
    out = prepare_embedded(EMBEDDED, sentences, cache)
    return entry_bytes(out)


@pytest.mark.parametrize("damage", DAMAGES)
@pytest.mark.parametrize("victim", ["tokenizer.json", "model.safetensors"])
def test_damaged_embedded_model_is_rebuilt_with_a_warning(tmp_path, sentences, clean_embedded, damage, victim, caplog):
    out = prepare_embedded(EMBEDDED, sentences, tmp_path)
    DAMAGES[damage](out / victim)
    with caplog.at_level(logging.WARNING):
        again = prepare_embedded(EMBEDDED, sentences, tmp_path)
    assert again == out and warned(caplog, "is damaged or incomplete")
    assert entry_bytes(out) == clean_embedded
    load_pretrained(out)  # loads


# ------------------------------------------------------------------ finetune epochs
def _finetune(tiny_neox, tiny_tokenizer, sentences, out_dir: Path):
    train = [Record(id=str(i), instruction=s[:20], output=s) for i, s in enumerate(sentences[:24])]
    return run_finetune(
        tiny_neox().train(), tiny_tokenizer, train, cfg=FINETUNE, trainer=TrainerConfig(), out_dir=out_dir
    )


@pytest.fixture(scope="module")
def clean_finetune(tmp_path_factory, tiny_neox, tiny_tokenizer, sentences):
    res = _finetune(tiny_neox, tiny_tokenizer, sentences, tmp_path_factory.mktemp("ft") / "ft")
    return res.final_dir.parent


@pytest.mark.parametrize("damage", DAMAGES)
def test_damaged_cached_finetune_is_retrained_to_the_same_weights(
    tmp_path, tiny_neox, tiny_tokenizer, sentences, clean_finetune, damage, caplog
):
    out = tmp_path / "ft"
    shutil.copytree(clean_finetune, out)
    victim = "tokenizer.json" if damage == "delete" else "model.safetensors"
    DAMAGES[damage](out / "epoch-001" / victim)
    with caplog.at_level(logging.WARNING):
        res = _finetune(tiny_neox, tiny_tokenizer, sentences, out)
    assert not res.cached and warned(caplog, "is damaged") and "epoch-001" in caplog.text
    for epoch in ("epoch-000", "epoch-001", "epoch-002"):
        assert entry_bytes(out / epoch) == entry_bytes(clean_finetune / epoch), epoch
    assert _finetune(tiny_neox, tiny_tokenizer, sentences, out).cached  # and sealed again


def test_an_intact_cached_finetune_is_reused(tmp_path, tiny_neox, tiny_tokenizer, sentences, clean_finetune):
    out = tmp_path / "ft"
    shutil.copytree(clean_finetune, out)  # another inode and ctime: re-hashed, same bytes
    assert _finetune(tiny_neox, tiny_tokenizer, sentences, out).cached


@pytest.mark.parametrize("damage", DAMAGES)
def test_loading_a_damaged_sealed_checkpoint_is_refused_in_one_line(tmp_path, clean_finetune, damage):
    ckpt = tmp_path / "epoch-002"
    shutil.copytree(clean_finetune / "epoch-002", ckpt)
    DAMAGES[damage](ckpt / ("tokenizer.json" if damage == "delete" else "model.safetensors"))
    with pytest.raises(ConfigError, match=r"the checkpoint .* is damaged") as err:
        load_pretrained(ckpt)
    assert "\n" not in str(err.value)


# ------------------------------------------------------------------ a user's own checkpoint (not rebuildable)
@pytest.mark.parametrize("damage", ["delete", "truncate", "random_bytes"])
@pytest.mark.parametrize("victim", ["tokenizer.json", "model.safetensors"])
def test_a_damaged_user_checkpoint_is_refused_in_one_line(tmp_path, clean_finetune, damage, victim):
    ckpt = tmp_path / "mine"
    shutil.copytree(clean_finetune / "epoch-002", ckpt)
    (ckpt / sealed.SEAL).unlink()  # the user's own directory: nothing to check it against
    DAMAGES[damage](ckpt / victim)
    with pytest.raises(ConfigError, match=r"cannot load") as err:
        load_pretrained(ckpt)
    assert "\n" not in str(err.value) and "LM head" not in str(err.value)


# ------------------------------------------------------------------ single-file entries
@pytest.mark.parametrize("damage", DAMAGES)
def test_damaged_stride_operators_are_retrained_with_a_warning(tmp_path, damage, caplog):
    from rise_exp.methods.stride.operator_store import StoredOperators, load_operators, save_operators

    g = torch.Generator().manual_seed(0)
    state = StoredOperators(
        torch.randn(4, 8, generator=g), torch.randn(3, 8, 4, generator=g), np.ones((3, 5), bool), 1, [0.5, 0.25]
    )
    path = tmp_path / "ops.safetensors"
    save_operators(path, state)
    shape = dict(n_ops=3, n_rows=5, hidden=8, rank=4)
    assert torch.equal(load_operators(path, **shape).read, state.read)
    DAMAGES[damage](path)
    with caplog.at_level(logging.WARNING):
        assert load_operators(path, **shape) is None
    assert damage == "delete" or warned(caplog, "damaged")
    assert not path.exists()  # the next build stores fresh ones


@pytest.mark.parametrize("damage", DAMAGES)
def test_damaged_retraining_results_are_retrained(tmp_path, damage, caplog):
    from rise_exp.counterfactual.retrain import _read

    path = tmp_path / "r.json"
    path.write_text('{"values": {"loss": [1.25, 2.5, 3.75]}, "rows": 12, "seed": 0}')
    sealed.seal_file(path)
    assert _read(path, ["loss"])["loss"].tolist() == [1.25, 2.5, 3.75]
    DAMAGES[damage](path)
    with caplog.at_level(logging.WARNING):
        assert _read(path, ["loss"]) is None
    assert damage == "delete" or warned(caplog, "damaged")


@pytest.mark.parametrize("damage", DAMAGES)
def test_damaged_zo_inf_losses_are_recomputed_to_the_same_scores(
    tmp_path, tiny_tokenizer, sentences, clean_finetune, damage, caplog
):
    from transformers import AutoModelForCausalLM

    from rise_exp.methods.base import MethodContext
    from rise_exp.methods.zo_inf.method import ZOInf

    ckpts = sorted(p for p in clean_finetune.glob("epoch-*"))
    model = AutoModelForCausalLM.from_pretrained(ckpts[-1]).eval()
    ctx = MethodContext(model=model, tokenizer=tiny_tokenizer, work_dir=tmp_path, checkpoints=ckpts, max_length=64)
    train = [Record(id=str(i), instruction=s[:20], output=s) for i, s in enumerate(sentences[:12])]
    queries = [Record(id=f"q{i}", instruction=s[:20], output=s) for i, s in enumerate(sentences[30:33])]
    first = ZOInf({"neighbors": 2}, ctx)
    first.build(train)
    expected = first.score(queries)
    gram = first._gram_path()
    losses = next(p for p in sorted(first.cache_dir().glob("*.npy")) if p != gram)
    for victim in (losses, gram):
        DAMAGES[damage](victim)
    with caplog.at_level(logging.WARNING):
        again = ZOInf({"neighbors": 2}, ctx)
        again.build(train)
    np.testing.assert_array_equal(again.score(queries), expected)
    assert damage == "delete" or warned(caplog, "is damaged or incomplete")
    assert sealed.file_problem(losses) is None and sealed.file_problem(gram) is None


# ------------------------------------------------------------------ a user's directory: identity follows the bytes
@pytest.mark.parametrize("damage", ["noise", "same_stamp", "garbage_mid"])
def test_weights_replaced_in_place_with_their_stamp_restored_get_a_new_identity(tmp_path, clean_finetune, damage):
    from rise_exp.models.identity import directory_identity

    mine = tmp_path / "mine"
    shutil.copytree(clean_finetune / "epoch-002", mine)
    hashes = tmp_path / "cache" / "file-sha256.json"
    before = directory_identity(mine, hashes)
    inode = (mine / "model.safetensors").stat().st_ino
    DAMAGES[damage](mine / "model.safetensors")  # written in place: same inode, same size
    assert (mine / "model.safetensors").stat().st_ino == inode
    assert directory_identity(mine, hashes) != before


# ------------------------------------------------------------------ a merged adapter (model.adapter)
@pytest.fixture(scope="module")
def adapter_setup(tmp_path_factory, tiny_neox, tiny_tokenizer):
    peft = pytest.importorskip("peft")
    root = tmp_path_factory.mktemp("adapter")
    base = tiny_neox()
    base.save_pretrained(root / "base")
    tiny_tokenizer.save_pretrained(root / "base")
    lora = peft.get_peft_model(base, peft.LoraConfig(r=2, target_modules=["query_key_value"], init_lora_weights=False))
    lora.save_pretrained(root / "adapter")
    spec = ModelConfig(name="mine", source="local", hub_id=str(root / "base"), adapter=str(root / "adapter"))
    return spec, root


@pytest.mark.parametrize("damage", DAMAGES)
def test_damaged_merged_adapter_is_merged_again_with_a_warning(tmp_path, adapter_setup, damage, caplog):
    from rise_exp.models.weights import merged_adapter_dir

    spec, root = adapter_setup
    out = merged_adapter_dir(spec, root / "base", None, tmp_path)
    clean = entry_bytes(out)
    DAMAGES[damage](out / ("tokenizer.json" if damage == "delete" else "model.safetensors"))
    with caplog.at_level(logging.WARNING):
        assert merged_adapter_dir(spec, root / "base", None, tmp_path) == out
    assert warned(caplog, "is damaged or incomplete") and entry_bytes(out) == clean
