"""Each tampering of a finished index is detected by SignatureIndex.open with a clear message, and a
reusing build either repairs it (a logged warning naming the block or file and the reason; the result
is byte-identical to a clean build) or refuses it naming the setting that rebuilds (nothing deleted)."""

from __future__ import annotations

import json
import logging
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from rise_exp.core.errors import IndexError_
from rise_exp.index import SignatureIndex
from tests.helpers import shard_bytes
from tests.reliability.fault_kit import manifest, rise


def flip_byte(root: Path) -> None:
    path = root / "vectors-00002.npy"
    data = bytearray(path.read_bytes())
    data[-5] ^= 0x10
    path.write_bytes(bytes(data))


def truncate_shard(root: Path) -> None:
    path = root / "vectors-00001.npy"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def drop_marker(root: Path) -> None:
    (root / "block-00003.done").unlink()


def stray_block(root: Path) -> None:
    np.save(root / "vectors-00042.npy", np.zeros((2, 4), np.float32))


def foreign_tables(root: Path) -> None:
    from safetensors.torch import load_file, save_file

    tables = load_file(str(root / "sketch.safetensors"))
    save_file({k: v.flip(0) for k, v in tables.items()}, str(root / "sketch.safetensors"))


def damage_plan(root: Path) -> None:
    path = root / "plan.json"
    path.write_text(path.read_text().replace('"blocks":[[0,', '"blocks":[[1,'))


def edit(**changes: object) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        m = json.loads((root / "manifest.json").read_text())
        for key, value in changes.items():
            if key == "shard_rows":
                m["shards"][0]["rows"] = value
            else:
                m[key] = value
        (root / "manifest.json").write_text(json.dumps(m))

    return apply


def garble_manifest(root: Path) -> None:
    (root / "manifest.json").write_text('{"format_version": 2, "num_')


#: name -> (tampering, what open says, what a reusing build says)
REPAIRED = {
    "flipped byte": (flip_byte, "block 2 file vectors-00002.npy fails its sha256", "block 2 is recomputed: .*sha256"),
    "truncated shard": (truncate_shard, "vectors-00001.npy is truncated", "block 1 is recomputed: .*truncated"),
    "missing marker": (drop_marker, "block 3 has no marker", "block 3 is recomputed: .*no marker"),
    "stray block": (stray_block, r"blocks \[42\] are on disk", "block 42 is deleted: .*not in the batch plan"),
    "foreign sketch file": (foreign_tables, "sketch.safetensors does not match", "sketch.safetensors .*restored"),
    "damaged plan": (damage_plan, "plan.json is missing or does not match", "plan.json fails .*restored"),
    "edited shard rows": (edit(shard_rows=5), "disagrees with manifest.json", "manifest.json lists other shards"),
}
REFUSED = {
    "edited num_rows": (edit(num_rows=49), "rows must appear exactly once", "num_rows: 49 -> 48"),
    "edited dim": (edit(dim=100), r"holds \[8, 384\] float32, but manifest.json says dim 100", "dim: 100 -> 384"),
    "edited version": (edit(format_version=1), "format_version 1, expected 2", "format_version: 1 -> 2"),
    "garbled manifest": (garble_manifest, "manifest.json is unreadable", "manifest.json is unreadable"),
}


@pytest.fixture
def copy(clean_index, tmp_path) -> Path:
    path = tmp_path / "index"
    shutil.copytree(clean_index, path)
    return path


@pytest.mark.parametrize("name", sorted(REPAIRED))
def test_tampering_is_detected_and_repaired_out_loud(name, copy, clean_index, model, tiny_tokenizer, pool, caplog):
    tamper, opened, warned = REPAIRED[name]
    tamper(copy)
    with pytest.raises(IndexError_, match=opened):
        SignatureIndex.open(copy)
    with caplog.at_level(logging.WARNING, logger="rise_exp.index"):
        rise(model, tiny_tokenizer, copy).build(pool)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(re.search(warned, w) for w in warnings), warnings
    assert all(str(copy) in w for w in warnings)
    assert shard_bytes(copy) == shard_bytes(clean_index)
    assert manifest(copy) == manifest(clean_index)


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_tampering_is_detected_and_refused_naming_the_setting(name, copy, model, tiny_tokenizer, pool):
    tamper, opened, refused = REFUSED[name]
    tamper(copy)
    with pytest.raises(IndexError_, match=opened):
        SignatureIndex.open(copy)
    before = shard_bytes(copy)
    with pytest.raises(IndexError_, match=refused) as err:
        rise(model, tiny_tokenizer, copy).build(pool)
    assert "method.index.reuse=false" in str(err.value) and "method.index.dir" in str(err.value)
    assert "resume=False" not in str(err.value)
    assert shard_bytes(copy) == before  # nothing already computed was deleted


def test_an_index_built_with_other_sketch_tables_is_refused(copy, model, tiny_tokenizer, pool):
    with pytest.raises(IndexError_, match=r"method.seed: 3 -> 4.*tables_sha256") as err:
        rise(model, tiny_tokenizer, copy, seed=4).build(pool)
    assert "method.index.reuse=false" in str(err.value)
