"""SignatureIndex.open: a half-written or damaged index is refused by name; lazy verification on read."""

from __future__ import annotations

import numpy as np
import pytest

from rise_exp.core.errors import IndexError_
from rise_exp.index import SignatureIndex
from tests.index.toy import DIM, build, tables


@pytest.mark.parametrize(
    "damage, match",
    [
        ("no_finalize", "status is 'building'"),
        ("no_manifest", "no manifest.json"),
        ("missing_marker", "block 2 has no marker"),
        ("bad_checksum", "block 1 file vectors-00001.npy fails its sha256"),
        ("missing_file", "block 3 file rows-00003.npy is missing"),
        ("extra_block", "blocks \\[9\\] are on disk"),
        ("bad_tables", "sketch.safetensors does not match"),
    ],
)
def test_open_detects_half_written_index(tmp_path, damage, match):
    w = build(tmp_path)
    if damage != "no_finalize":
        w.finalize()
    if damage == "no_manifest":
        (tmp_path / "manifest.json").unlink()
    elif damage == "missing_marker":
        (tmp_path / "block-00002.done").unlink()
    elif damage == "bad_checksum":
        arr = np.load(tmp_path / "vectors-00001.npy")
        arr[0, 0] += 1
        np.save(tmp_path / "vectors-00001.npy", arr)
    elif damage == "missing_file":
        (tmp_path / "rows-00003.npy").unlink()
    elif damage == "extra_block":
        np.save(tmp_path / "vectors-00009.npy", np.zeros((1, DIM), np.float16))
    elif damage == "bad_tables":
        from safetensors.torch import save_file

        save_file({**tables(), "h_buckets": tables()["h_buckets"] + 1}, str(tmp_path / "sketch.safetensors"))
    with pytest.raises(IndexError_, match=match):
        SignatureIndex.open(tmp_path)


def test_lazy_verification_catches_damage_on_read(tmp_path):
    build(tmp_path).finalize()
    arr = np.load(tmp_path / "vectors-00001.npy")
    arr[0, 0] += 1
    np.save(tmp_path / "vectors-00001.npy", arr)
    index = SignatureIndex.open(tmp_path, verify="lazy")
    index.block(0)
    with pytest.raises(IndexError_, match="vectors-00001.npy fails"):
        list(index.iter_blocks())
