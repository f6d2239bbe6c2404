"""core/files.py and core/hashing.py: an atomic write returns the sha256 of exactly the bytes on disk and
leaves nothing half-written; content hashes are stable."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from rise_exp.core import hashing
from rise_exp.core.files import save_json, save_npy, write_atomic
from rise_exp.core.hashing import config_hash, file_sha256


def test_save_npy_and_save_json_return_the_sha256_of_the_file(tmp_path):
    arr = np.arange(12, dtype=np.float32).reshape(3, 4)[:, ::2]  # not contiguous: saved contiguous
    sha = save_npy(tmp_path / "a.npy", arr)
    assert sha == hashlib.sha256((tmp_path / "a.npy").read_bytes()).hexdigest() == file_sha256(tmp_path / "a.npy")
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), arr)
    sha = save_json(tmp_path / "m.json", {"b": 1, "a": [1, 2]})
    assert sha == file_sha256(tmp_path / "m.json")
    assert json.loads((tmp_path / "m.json").read_text()) == {"a": [1, 2], "b": 1}
    assert (tmp_path / "m.json").read_text().index('"a"') < (tmp_path / "m.json").read_text().index('"b"')
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npy", "m.json"]  # no temporary file left


def test_a_failed_write_leaves_the_old_file_and_no_final_name(tmp_path):
    path = tmp_path / "x.bin"
    write_atomic(path, lambda fh: fh.write(b"old"))

    def half(fh):
        fh.write(b"ne")
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        write_atomic(path, half)
    assert path.read_bytes() == b"old"
    with pytest.raises(RuntimeError):
        write_atomic(tmp_path / "new.bin", half)
    assert not (tmp_path / "new.bin").exists()


def test_config_hash_is_stable_order_free_and_short():
    a = config_hash({"kr": 128, "kh": 128, "seed": 0})
    assert a == config_hash({"seed": 0, "kh": 128, "kr": 128}) and len(a) == 12
    assert a != config_hash({"kr": 64, "kh": 128, "seed": 0})
    assert len(config_hash([1, 2], n=20)) == 20
    assert config_hash({"p": __import__("pathlib").Path("/x")}) == config_hash({"p": "/x"})  # unknown types as str


def test_file_sha256_reads_in_chunks(tmp_path, monkeypatch):
    data = bytes(range(256)) * 1000
    (tmp_path / "f").write_bytes(data)
    monkeypatch.setattr(hashing, "_CHUNK", 1000)  # many chunks, the last one partial
    assert file_sha256(tmp_path / "f") == hashlib.sha256(data).hexdigest()
