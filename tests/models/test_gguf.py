"""models/gguf.py: where a GGUF file is found (an installed package without importing it, a directory, a hub repo),
the identity that follows its bytes, and clear errors for a missing package, a missing file and an unreadable one."""

from __future__ import annotations

import hashlib
import importlib.util

import pytest

from rise_exp.core import sealed
from rise_exp.core.errors import ConfigError
from rise_exp.models.gguf import convert_gguf, gguf_location, package_dir


@pytest.fixture()
def weights_package(tmp_path, monkeypatch):
    """An installed package ``tiny_gguf_weights`` holding ``model.gguf``; importing it would fail."""
    root = tmp_path / "site"
    pkg = root / "tiny_gguf_weights"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("raise ImportError('the package must not be imported')\n")
    (pkg / "model.gguf").write_bytes(b"GGUF" + bytes(range(64)))
    monkeypatch.syspath_prepend(str(root))
    importlib.invalidate_caches()
    return pkg


def test_package_dir_finds_the_package_without_importing_it(weights_package):
    assert package_dir("tiny_gguf_weights") == weights_package


def test_a_missing_package_names_how_to_install_it():
    with pytest.raises(ConfigError, match=r"model.package 'no_such_weights_pkg' is not installed.*no-such-weights-pkg"):
        package_dir("no_such_weights_pkg")


def test_package_and_directory_files_are_identified_by_their_bytes(weights_package, tmp_path):
    digest = hashlib.sha256((weights_package / "model.gguf").read_bytes()).hexdigest()[:16]
    where, identity = gguf_location("package", "tiny_gguf_weights", "model.gguf")
    assert (where, identity) == (str(weights_package), f"gguf:model.gguf:{digest}")
    assert gguf_location("local", str(weights_package), "model.gguf") == (str(weights_package), identity)
    (weights_package / "model.gguf").write_bytes(b"GGUF other weights")
    assert gguf_location("local", str(weights_package), "model.gguf")[1] != identity  # new bytes, new identity


def test_a_hub_file_is_named_by_repo_and_file_without_touching_the_disk():
    assert gguf_location("hub", "someone/some-model-GGUF", "q8.gguf") == (
        "someone/some-model-GGUF",
        "someone/some-model-GGUF/q8.gguf",
    )


def test_a_missing_file_is_named_with_where_it_was_looked_for(weights_package, tmp_path):
    with pytest.raises(ConfigError, match=rf"model.gguf_file 'other.gguf' not found in {weights_package}"):
        gguf_location("package", "tiny_gguf_weights", "other.gguf")
    with pytest.raises(ConfigError, match=rf"model.gguf_file 'model.gguf' not found in {tmp_path / 'empty'}"):
        gguf_location("local", str(tmp_path / "empty"), "model.gguf")


def test_a_finished_conversion_is_reused_without_reading_the_file(tmp_path):
    out = tmp_path / "converted"
    out.mkdir()
    (out / "config.json").write_text("{}\n")
    sealed.seal(out)  # a finished conversion is a sealed one
    assert convert_gguf(str(tmp_path / "nowhere"), "missing.gguf", out) == out  # would fail if it read anything


def test_an_unreadable_gguf_file_is_one_clear_error(weights_package, tmp_path):
    pytest.importorskip("gguf", reason="the smollm2 extra is not installed")
    out = tmp_path / "converted"
    with pytest.raises(ConfigError, match=r"cannot read GGUF model .*model.gguf"):
        convert_gguf(str(weights_package), "model.gguf", out)
    assert not (out / sealed.SEAL).exists()
