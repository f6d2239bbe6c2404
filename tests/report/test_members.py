"""rise_exp.report.members: ensemble members pooled over sketch and finetune seeds, by hand-computed values."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
import yaml

from rise_exp.report import collect_members, collect_runs, summarize_members, write_report


def _member_run(root: Path, job: str, finetune_seed: int, answers: bool, auprc10: list[float], epochs: int = 8):
    """One attribute job of a RISE ensemble with ``members.csv`` (sketch seeds 0, 1000, ...)."""
    d = root / job
    (d / ".hydra").mkdir(parents=True)
    cfg = {
        "seed": 0,
        "stage": {"name": "attribute", "members": True},
        "task": {"name": "howdy"},
        "model": {"name": "smollm2-135m"},
        "method": {"name": "rise", "ensemble": len(auprc10), "seed": 0},
        "finetune": {"seed": finetune_seed, "epochs": epochs},
        "data": {"attribute_mask_prompt": answers},
    }
    (d / "config.yaml").write_text(yaml.safe_dump(cfg))
    overrides = [f"finetune.seed={finetune_seed}", f"data.attribute_mask_prompt={str(answers).lower()}"]
    (d / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    (d / "metrics.json").write_text('{"auprc@10": %r}' % (sum(auprc10) / len(auprc10)))
    (d / "status.json").write_text('{"status": "ok"}')
    table = pd.DataFrame({"sketch_seed": [1000 * e for e in range(len(auprc10))], "auprc@10": auprc10})
    table["p@10"] = 0.5
    table.to_csv(d / "members.csv", index=False)


@pytest.fixture
def finetune_seeds(tmp_path: Path) -> Path:
    """Two finetune seeds x two token rules, three sketch seeds each."""
    root = tmp_path / "ft_seeds"
    _member_run(root, "ft1/rise/0", 1, False, [1.0, 1.0, 0.97])
    _member_run(root, "ft1/rise/1", 1, True, [0.1, 0.2, 0.3])
    _member_run(root, "ft2/rise/0", 2, False, [1.0, 0.94, 1.0])
    _member_run(root, "ft2/rise/1", 2, True, [0.5, 0.6, 0.7])
    return root


def test_members_pool_finetune_and_sketch_seeds(finetune_seeds):
    members = collect_members(collect_runs(finetune_seeds))
    assert len(members) == 12 and set(members["finetune_seed"]) == {1, 2}
    pooled = summarize_members(members).set_index("data.attribute_mask_prompt")
    answers = pooled.loc[True]
    assert answers["n"] == 6 and answers["runs"] == 2
    assert answers["finetune seeds"] == "1, 2" and answers["sketch seeds"] == "0, 1000, 2000"
    values = [0.1, 0.2, 0.3, 0.5, 0.6, 0.7]
    assert answers["auprc@10_mean"] == pytest.approx(0.4)
    assert answers["auprc@10_std"] == pytest.approx(math.sqrt(sum((v - 0.4) ** 2 for v in values) / 5))
    per = summarize_members(members, by_finetune_seed=True).set_index(["data.attribute_mask_prompt", "finetune_seed"])
    assert per.loc[(True, 2), "auprc@10_mean"] == pytest.approx(0.6)
    assert per.loc[(True, 2), "auprc@10_std"] == pytest.approx(0.1)
    assert per.loc[(False, 1), "auprc@10_mean"] == pytest.approx(0.99)


def test_report_has_members_section_and_csvs(finetune_seeds, tmp_path):
    rep = write_report(finetune_seeds, tmp_path / "out", use_wandb=False)
    section = rep.markdown.split("## Ensemble members (stage.members=true)", 1)[1]
    pooled_md, per_seed_md = section.split("Per finetune seed", 1)

    def rows(md: str) -> list[list[str]]:
        return [[c.strip() for c in line.split("|")[1:-1]] for line in md.splitlines() if line.startswith("| ")]

    header, *pooled = rows(pooled_md)
    assert header[2:8] == ["data.attribute_mask_prompt", "finetune seeds", "sketch seeds", "runs", "n", "auprc@10"]
    answers = next(r for r in pooled if r[2] == "True")
    assert answers[3:8] == ["1, 2", "0, 1000, 2000", "2", "6", "0.4000 ± 0.2366"]  # 2 finetune x 3 sketch seeds
    header, *per_seed = rows(per_seed_md)
    assert header[3] == "finetune_seed"
    assert next(r for r in per_seed if r[2:4] == ["True", "2"])[7] == "0.6000 ± 0.1000"
    assert {"members.csv", "members_summary.csv"} <= {p.name for p in rep.files}
    assert len(pd.read_csv(tmp_path / "out" / "members.csv")) == 12


def test_model_as_loaded_and_unreadable_members(tmp_path):
    root = tmp_path / "pool"
    _member_run(root, "0", 7, False, [0.9, 0.8], epochs=0)
    _member_run(root, "1", 7, True, [0.2, 0.4], epochs=0)
    (root / "1" / "members.csv").write_text("auprc@10\n0.3\n")  # no sketch_seed column
    rep = write_report(root, tmp_path / "out", use_wandb=False)
    members = collect_members(rep.runs)
    assert set(members["finetune_seed"]) == {"none (as loaded)"} and len(members) == 2
    assert "left out: " in rep.markdown and str(root / "1" / "members.csv") in rep.markdown
    assert "0.8500 ± 0.0707" in rep.markdown


def test_no_members_no_section(sweep, tmp_path):
    rep = write_report(sweep, tmp_path / "out", use_wandb=False)
    assert "Ensemble members" not in rep.markdown and not (tmp_path / "out" / "members.csv").exists()
