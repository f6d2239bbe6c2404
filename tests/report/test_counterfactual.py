"""Counterfactual tables over method seeds: hand-computed means and sample stds of per-run results."""

from __future__ import annotations

from pathlib import Path

import pytest

from rise_exp.report.counterfactual import collect_sections, seed_tables


def _run(
    root: Path, name: str, seed: int, lds: dict[str, float] | None, removal: float | None, overrides: str = ""
) -> Path:
    d = root / name
    d.mkdir()
    (d / "config.yaml").write_text(f"seed: {seed}\nmethod:\n  name: rise\n")
    if overrides:
        (d / ".hydra").mkdir()
        (d / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in [f"seed={seed}", *overrides.split()]))
    if lds is not None:
        lines = ["method,measure,lds_mean,lds_std,ci_low,ci_high,queries"]
        lines += [f"{m},loss,{v},0.1,0.0,1.0,10" for m, v in lds.items()]
        (d / "lds.csv").write_text("\n".join(lines) + "\n")
    if removal is not None:
        (d / "removal_summary.csv").write_text(
            "method,selection,k,loss_mean,loss_std,queries,replicates\n"
            f"rise,top,5,{removal},0.5,10,1\nrandom,random,5,0.0,0.1,10,1\n"
        )
    return d


def test_lds_and_removal_over_method_seeds(tmp_path):
    runs = [
        _run(tmp_path, "a", 0, {"rise": 0.2, "bm25": 0.1}, None),
        _run(tmp_path, "b", 1, {"rise": 0.4, "bm25": 0.1}, None),
        _run(tmp_path, "c", 2, {"rise": 0.6, "bm25": 0.1}, None),
        _run(tmp_path, "d", 0, None, 1.0),
        _run(tmp_path, "e", 1, None, 2.0),
    ]
    lds, removal = seed_tables(runs)
    rise = lds.set_index("method").loc["rise"]
    assert rise["lds_mean"] == pytest.approx(0.4) and rise["lds_std"] == pytest.approx(0.2)  # sample std
    assert rise["seeds"] == 3 and lds.set_index("method").loc["bm25", "lds_std"] == pytest.approx(0.0)
    top = removal.set_index("method").loc["rise"]
    assert top["loss_mean"] == pytest.approx(1.5) and top["loss_std"] == pytest.approx(2**-0.5)
    assert top["seeds"] == 2 and "queries_mean" not in removal.columns
    text, plots = collect_sections(runs, tmp_path)
    assert "LDS over method seeds" in text and "0.400 ± 0.200" in text and plots == []
    assert (tmp_path / "lds_seeds.csv").is_file() and (tmp_path / "removal_seeds.csv").is_file()


def test_runs_that_differ_in_more_than_the_seed_are_not_pooled(tmp_path):
    runs = [
        _run(tmp_path, "a", 0, {"rise": 0.2}, None, "stage.retrain.epochs=2"),
        _run(tmp_path, "b", 1, {"rise": 0.4}, None, "stage.retrain.epochs=2"),
        _run(tmp_path, "c", 0, {"rise": 0.6}, None, "stage.retrain.epochs=4"),
        _run(tmp_path, "d", 1, {"rise": 1.0}, None, "stage.retrain.epochs=4"),
    ]
    lds, _ = seed_tables(runs)
    by = lds.set_index("setting")["lds_mean"]
    assert by["stage.retrain.epochs=2"] == pytest.approx(0.3) and by["stage.retrain.epochs=4"] == pytest.approx(0.8)
    assert list(lds["seeds"]) == [2, 2]
    text, _ = collect_sections(runs, tmp_path)
    assert "| rise (stage.retrain.epochs=4) | loss | 0.800 ± 0.283 | 2 |" in text
    same = [_run(tmp_path, f"s{s}", s, {"rise": 0.1 * s}, None, "task.seed=3") for s in (0, 1, 2)]
    lds, _ = seed_tables(same)  # one shared override: pooled, no setting column
    assert "setting" not in lds and lds["lds_mean"].iloc[0] == pytest.approx(0.1)


def test_no_seed_table_without_two_seeds(tmp_path):
    one = [_run(tmp_path, "a", 0, {"rise": 0.2}, 1.0)]
    assert seed_tables(one) == (None, None)
    same = [*one, _run(tmp_path, "b", 0, {"rise": 0.3}, 2.0)]  # another retraining setting, same method seed
    assert seed_tables(same) == (None, None)


def test_pooled_setting_joins_the_seed(tmp_path):
    """--pool finetune.seed: pairs (finetune seed i, seed i) pool into one spread instead of one row per finetune."""
    runs = []
    for i, value in enumerate((0.2, 0.4, 0.9)):
        d = _run(tmp_path, f"ft{i}", i, {"rise": value}, None, f"finetune.seed={i}")
        (d / "config.yaml").write_text(f"seed: {i}\nmethod:\n  name: rise\nfinetune:\n  seed: {i}\n")
        runs.append(d)
    split, _ = seed_tables(runs)  # unpooled: one row per finetune seed, each of one run
    assert list(split["setting"]) == [f"finetune.seed={i}" for i in range(3)] and list(split["seeds"]) == [1, 1, 1]
    lds, _ = seed_tables(runs, pool=["finetune.seed"])
    assert "setting" not in lds and lds["seeds"].iloc[0] == 3
    assert lds["lds_mean"].iloc[0] == pytest.approx(0.5) and lds["lds_std"].iloc[0] == pytest.approx(0.360555, rel=1e-5)
    text, _ = collect_sections(runs, tmp_path, pool=["finetune.seed"])
    assert "LDS, mean ± std over method seeds and finetune.seed" in text and "0.500 ± 0.361" in text
