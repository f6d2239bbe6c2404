"""Every name a setting turns into a path is one safe component: fed ``../``, absolute paths and
separators, the paths built from it stay inside their root."""

from __future__ import annotations

from pathlib import Path

import pytest

from rise_exp.config.task import CustomTaskConfig
from rise_exp.core.errors import ConfigError
from rise_exp.core.names import contained, safe_component
from rise_exp.methods.base import MethodContext
from rise_exp.run.config import data_name

#: Hostile names, the one list every path-forming setting is fed.
HOSTILE = ("../../ESCAPE", "/abs/X", "a/b", "a\\b", "..", ".", "", ".hidden", "x/../../y", "~/x", "a\0b", "é/ü", "-")


@pytest.mark.parametrize("name", HOSTILE)
def test_safe_component_is_one_plain_component(name, tmp_path):
    safe = safe_component(name)
    assert safe and "/" not in safe and "\\" not in safe and not safe.startswith(".") and safe not in ("..", ".")
    assert (tmp_path / safe).resolve().parent == tmp_path.resolve()


def test_safe_component_by_hand():
    assert safe_component("../../ESCAPE") == "ESCAPE"
    assert safe_component("/abs/X") == "abs_X"
    assert safe_component("my data v2.jsonl") == "my_data_v2.jsonl"
    assert safe_component("..", fallback="task") == "task"
    assert len(safe_component("a" * 1000)) == 96


@pytest.mark.parametrize("name", HOSTILE)
def test_the_run_directory_name_of_a_title_or_hub_id_is_contained(name, tmp_path):
    """``${data_name:${task}}`` of conf/config.yaml: the run directory's data component."""
    for task in (
        {"name": "custom", "title": name or None, "train_path": "p.jsonl"},
        {"name": "custom", "source": "hf", "hf_id": name or "x"},
    ):
        got = data_name(task)
        assert (tmp_path / got).resolve().parent == tmp_path.resolve(), (task, got)
    assert data_name({"name": "custom", "title": name or None, "train_path": "p.jsonl"}) == safe_component(name or "p")


def test_a_title_is_kept_as_written_for_display():
    assert CustomTaskConfig(title="my pool", train_path="p.jsonl").data_name == "my pool"


@pytest.mark.parametrize("name", HOSTILE)
def test_index_directories_of_every_method_stay_in_the_cache(name, tmp_path, tiny_neox, tiny_tokenizer):
    from rise_exp.methods.bm25.method import BM25Method
    from rise_exp.methods.registry import method_class

    root = tmp_path / "cache" / "indexes"
    ctx = MethodContext(
        model=tiny_neox(), tokenizer=tiny_tokenizer, work_dir=tmp_path / "run", index_root=root, data_name=name
    )
    bm25 = BM25Method({"name": "bm25"}, ctx)
    rise = method_class("rise")({"name": "rise"}, ctx)
    for path in (bm25.index_dir("h"), rise.index_dir("h")):
        assert path.resolve().parent == root.resolve(), path


@pytest.mark.parametrize("name", [n for n in HOSTILE if n not in ("", ".")])
def test_contained_refuses_what_leaves_its_root(name, tmp_path):
    leaves = Path(name).is_absolute() or ".." in Path(name).parts or "\0" in name
    if leaves:
        with pytest.raises(ConfigError, match="would leave"):
            contained(tmp_path, name, "model.gguf_file")
    else:
        assert tmp_path.resolve() in contained(tmp_path, name).resolve().parents
