"""``method.index.reuse=false`` rebuilds (into a fresh directory, swapped in when complete); refusals
name the settings that work; a directory holding anything but an index is never deleted."""

from __future__ import annotations

import shutil

import pytest

from rise_exp.core.errors import ConfigError, IndexError_
from tests.helpers import shard_bytes
from tests.reliability.fault_kit import manifest, rise


def test_reuse_false_rebuilds_a_changed_build(model, tiny_tokenizer, pool, clean_index, tmp_path):
    path = tmp_path / "index"
    rise(model, tiny_tokenizer, path, kr=32).build(pool)  # another build in the same directory
    with pytest.raises(IndexError_, match="method.kr: 32 -> 16") as err:
        rise(model, tiny_tokenizer, path).build(pool)
    msg = str(err.value)
    assert "set method.index.reuse=false to rebuild it, or choose a new method.index.dir" in msg
    assert "resume=False" not in msg
    rebuilt = rise(model, tiny_tokenizer, path, index={"reuse": False})
    rebuilt.build(pool)
    assert shard_bytes(path) == shard_bytes(clean_index) and manifest(path) == manifest(clean_index)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index", "index.lock"]  # no .rebuild / .old left
    assert rebuilt.index.num_rows == len(pool)


def test_reuse_false_rebuilds_an_identical_index_and_a_half_rebuild(model, tiny_tokenizer, pool, clean_index, tmp_path):
    path = tmp_path / "index"
    shutil.copytree(clean_index, path)
    shutil.copytree(clean_index, tmp_path / "index.rebuild")  # left by an interrupted rebuild
    (tmp_path / "index.rebuild" / "block-00001.done").unlink()
    before = (path / "vectors-00000.npy").stat().st_ino
    rise(model, tiny_tokenizer, path, index={"reuse": False}).build(pool)
    assert (path / "vectors-00000.npy").stat().st_ino != before  # written again, not reused
    assert shard_bytes(path) == shard_bytes(clean_index)
    assert not (tmp_path / "index.rebuild").exists()


def test_reuse_false_never_deletes_a_directory_that_is_not_an_index(model, tiny_tokenizer, pool, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(
        ConfigError, match=r"method.index.dir: .* holds files that are not part of an index \(notes.txt\)"
    ):
        rise(model, tiny_tokenizer, tmp_path, index={"reuse": False}).build(pool)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_rapidin_refusal_names_its_own_settings(model, tiny_tokenizer, pool, tmp_path):
    from rise_exp.methods.base import MethodContext
    from rise_exp.methods.rapidin.method import RapidIn

    def rapidin(k: int) -> RapidIn:
        ctx = MethodContext(model=model, tokenizer=tiny_tokenizer, work_dir=tmp_path, model_id="tiny", max_length=32)
        return RapidIn({"k": k, "dir": str(tmp_path / "ix"), "block_rows": 2, "compress_batch": 2}, ctx)

    rapidin(64).build(pool[:5])
    with pytest.raises(IndexError_, match="set method.reuse=false to rebuild it, or choose a new method.dir"):
        rapidin(32).build(pool[:5])
