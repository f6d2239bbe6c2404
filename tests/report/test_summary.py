"""rise_exp.report.summary: seed statistics checked by hand, pooling, and the shared number formatting."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rise_exp.core.errors import ConfigError
from rise_exp.report import collect_runs, summarize
from rise_exp.report.summary import fmt_mean_std, fmt_number, fmt_setting, fmt_short, spread_note


def test_summary_mean_and_std_match_hand_computation(sweep):
    s = summarize(collect_runs(sweep)).set_index(["method", "kr"], drop=False)
    assert len(s) == 4
    sd2 = math.sqrt(2 * 0.05**2)  # sample std of two values 0.1 apart
    expect = {
        ("bm25", math.nan): (0.32, math.sqrt(2 * 0.02**2)),
        ("rise", 32): (0.45, sd2),
        ("rise", 64): (0.63, math.sqrt(2 * 0.03**2)),
        ("rise", 128): (0.75, sd2),
    }
    for (method, kr), (mean, std) in expect.items():
        row = s[(s["method"] == method) & ((s["kr"] == kr) | (s["kr"].isna() & math.isnan(kr)))].iloc[0]
        assert row["auprc@10_mean"] == pytest.approx(mean), (method, kr)
        assert row["auprc@10_std"] == pytest.approx(std), (method, kr)
        assert row["n_seeds"] == 2
    kr64 = s[s["kr"] == 64].iloc[0]
    assert kr64["n_failed"] == 1 and s["n_failed"].sum() == 1
    assert kr64["auroc@10_mean"] == pytest.approx(0.6) and math.isnan(kr64["auroc@10_std"])  # null skipped
    assert (s["task"] == "howdy").all() and (s["model"] == "tiny-pythia").all()
    # sorted by method, then kr ascending
    assert list(zip(s["method"], s["kr"].fillna(-1))) == [("bm25", -1), ("rise", 32), ("rise", 64), ("rise", 128)]


def test_summary_pools_an_extra_setting(sweep):
    s = summarize(collect_runs(sweep), pool=["kr"])
    rise = s[s["method"] == "rise"].iloc[0]
    assert len(s) == 2 and rise["n_seeds"] == 6 and rise["n_failed"] == 1
    assert rise["auprc@10_mean"] == pytest.approx((0.7 + 0.8 + 0.4 + 0.5 + 0.6 + 0.66) / 6)
    with pytest.raises(ConfigError, match="unknown column"):
        summarize(collect_runs(sweep), metrics=["nope"])


def test_number_formatting():
    assert [fmt_number(x) for x in (0.12345, 12.345, 123456.0, math.nan, None)] == [
        "0.1235",
        "12.3",
        "1.23e+05",
        "–",
        "–",
    ]
    assert fmt_mean_std(0.45, 0.0707107) == "0.4500 ± 0.0707"
    assert fmt_mean_std(800.0, 0.0) == "800.0 ± 0.0" and fmt_mean_std(0.6, math.nan) == "0.6000"
    assert fmt_mean_std(np.float32(0.5), np.float32("nan")) == "0.5000"
    assert [fmt_setting(x) for x in (64.0, 0.3, None, math.nan, "rh+gh")] == ["64", "0.3", "–", "–", "rh+gh"]
    assert [fmt_short(x) for x in (2.0, 1234.5, 0.001234, 0.0, math.nan)] == [
        "2.000",
        "1.23e+03",
        "0.00123",
        "0.000",
        "n/a",
    ]


def test_spread_note_names_the_seed_counts():
    assert spread_note([3, 3, 3]) == "error bars: ± sample std over 3 seeds"
    assert spread_note([2, 3], what="band") == "band: ± sample std over 2–3 seeds"
    assert spread_note([1, 3]) == "error bars: ± sample std over 1–3 seeds; none for 1 seed"
    assert spread_note([1, 1]) == "error bars: none (one seed per point)"
