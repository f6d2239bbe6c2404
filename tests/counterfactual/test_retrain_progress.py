"""LDS's retrainings show one bar over every (subset, seed) retraining, cached ones included, with an ETA."""

from __future__ import annotations

import numpy as np

from rise_exp.config.stages import RetrainConfig
from rise_exp.counterfactual.retrain import Retrainer, measure_masks_by_seed
from tests.helpers import record_bars


def test_every_retraining_advances_the_bar(monkeypatch) -> None:
    bars = record_bars(monkeypatch)
    retrainer = object.__new__(Retrainer)  # no model: each retraining returns its seed as the loss
    retrainer.retrain = RetrainConfig(seeds=(0, 1), measures=("loss",))
    monkeypatch.setattr(retrainer, "_run", lambda keep, seed, desc: {"loss": np.full(2, float(seed))}, raising=False)
    masks = np.ones((3, 4), dtype=bool)
    averaged, by_seed = measure_masks_by_seed(masks, retrainer)
    (bar,) = bars
    assert (bar.desc, bar.total, bar.updates) == ("retrainings", 3 * 2, [1] * 6)
    assert np.all(averaged["loss"] == 0.5) and np.all(by_seed[1]["loss"] == 1.0)
    retrainer.run(masks[0], 0)  # outside a task: nothing to advance, no error
    assert len(bars) == 1
