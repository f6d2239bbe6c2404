"""Long diagnostics show one bar with their whole work as its total (so an ETA): it names the diagnostic,
advances as pool rows are scored (not only at the end) and ends at its total."""

from __future__ import annotations

from rise_exp.diagnostics import diagnostic_entry
from tests.helpers import record_bars


def test_sketch_fidelity_counts_every_pool_pass(diagnostic_inputs, monkeypatch) -> None:
    bars = record_bars(monkeypatch)
    inp = diagnostic_inputs(
        "sketch_fidelity",
        "stage.sketch_fidelity.widths=[8/8/4]",
        "stage.sketch_fidelity.seeds=[0,1]",
        "stage.sketch_fidelity.ensembles=[]",
        "method.kr=16",
        "method.kh=8",
        "method.kg=8",
    )
    diagnostic_entry("sketch_fidelity")(inp)
    (bar,) = [b for b in bars if b.desc == "sketch_fidelity"]
    n = len(inp.pool_rows)  # 40: two references, then one width x two seeds, each a pass over the pool
    assert bar.total == n * (2 + 1 * 2) and sum(bar.updates) == bar.total
    # the references advance 16 rows at a time, the sketched scores one 64-row slice at a time
    assert bar.updates == [16, 16, 8] * 2 + [40] * 2


def test_layer_energy_counts_every_row_gradient(diagnostic_inputs, monkeypatch) -> None:
    bars = record_bars(monkeypatch)
    diagnostic_entry("layer_energy")(diagnostic_inputs("layer_energy", "stage.layer_energy.n_rows=3"))
    (bar,) = [b for b in bars if b.desc == "layer_energy"]
    assert bar.total == sum(bar.updates) and bar.updates == [1] * bar.total and bar.total > 3 * 2
