"""Each diagnostic on a tiny prepared run, checked on a property with a known answer."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from rise_exp.diagnostics import diagnostic_entry
from rise_exp.diagnostics.gradients import HEAD
from rise_exp.diagnostics.head_vs_full import gradient_kernels
from rise_exp.diagnostics.hidden_retrieval import cosine_scores, layer_means
from rise_exp.diagnostics.kernels import exact_scores
from rise_exp.diagnostics.layer_energy import shares, squared_norms
from rise_exp.diagnostics.result import write
from rise_exp.diagnostics.sparse_support import sample_tokens, support_stats
from rise_exp.methods import memory_model
from rise_exp.methods.rise import RiseHead
from rise_exp.methods.rise.trunk import hidden_states
from rise_exp.models.catalogue import parameter_count
from rise_exp.run.config import compose


def test_sketch_fidelity_table_and_files(diagnostic_inputs, tmp_path) -> None:
    inp = diagnostic_inputs(
        "sketch_fidelity",
        "stage.sketch_fidelity.widths=[8/8/4]",
        "stage.sketch_fidelity.seeds=[0,1]",
        "stage.sketch_fidelity.ensembles=[2]",
        "method.kr=16",
        "method.kh=8",
        "method.kg=8",
    )
    res = diagnostic_entry("sketch_fidelity")(inp)
    main, refs, per_seed = (sec.data for sec in res.sections)
    assert list(main["variant"]) == ["8/8/4", "2 x 16/8/8", "32/8/16"]
    assert len(per_seed) == 3 * 2 and set(per_seed["seed"]) == {0, 1}
    assert list(main["bytes_per_row"]) == [2 * (64 + 32), 2 * 2 * (128 + 64), 2 * (256 + 128)]
    # each reference agrees perfectly with itself
    for key, name in (("unsk", "unsketched RISE"), ("raw", "exact kernel (raw)"), ("cos", "exact kernel (cosine)")):
        assert refs.loc[refs["reference"] == name, f"spearman_{key}"].item() == pytest.approx(1.0)
    assert per_seed.filter(like="spearman").abs().max().max() <= 1.0
    files = write(res, tmp_path)
    assert {"sketch_fidelity.md", "sketch_fidelity.csv", "sketch_fidelity.png"} <= set(files)
    assert "± " in (tmp_path / "sketch_fidelity.md").read_text()


def test_head_vs_full_head_block_is_the_exact_kernel(diagnostic_inputs) -> None:
    inp = diagnostic_inputs("head_vs_full")
    pool, queries = inp.pool_rows[:8], inp.query_rows[:2]
    k = gradient_kernels(inp, queries, pool)
    raw, _ = exact_scores(inp.model, inp.pad_id, queries, pool, inp.rise)
    np.testing.assert_allclose(k["head"], raw, rtol=1e-4, atol=1e-5 * np.abs(raw).max())
    np.testing.assert_allclose(k["full"], k["head"] + k["trunk"])
    res = diagnostic_entry("head_vs_full")(
        diagnostic_inputs("head_vs_full", "stage.head_vs_full.n_rows=10", "stage.head_vs_full.seeds=[0,1]")
    )
    table = res.sections[0].data.set_index("scores")
    assert table.loc["full-model TracIn (raw)", "spearman_full_mean"] == pytest.approx(1.0)
    assert table.loc["RISE (sketched)", "runs"] == 2


def test_layer_energy_shares_sum_to_one_and_the_head_share_is_the_exact_kernel(diagnostic_inputs) -> None:
    inp = diagnostic_inputs("layer_energy")
    rows = inp.pool_rows[:4]
    names, sq = squared_norms(inp.model, rows, inp.pad_id)
    np.testing.assert_allclose(shares(sq).sum(axis=1), 1.0)
    raw, _ = exact_scores(inp.model, inp.pad_id, rows, rows, inp.rise)
    np.testing.assert_allclose(sq[:, names.index(HEAD)], np.diag(raw), rtol=1e-4)
    res = diagnostic_entry("layer_energy")(diagnostic_inputs("layer_energy", "stage.layer_energy.n_rows=3"))
    table = res.sections[0].data
    for col in ("rows_start_mean", "rows_finetuned_mean", "queries_start_mean", "queries_finetuned_mean"):
        assert table[col].sum() == pytest.approx(1.0)
    assert table["rows_start_mean"].tolist() != pytest.approx(table["rows_finetuned_mean"].tolist())


def test_hidden_retrieval_last_layer_is_risks_h_and_rows_find_themselves(diagnostic_inputs) -> None:
    inp = diagnostic_inputs("hidden_retrieval", "stage.hidden_retrieval.seeds=[0,1]")
    rows = inp.pool_rows[:6]
    means = layer_means(inp.model, rows, inp.pad_id, inp.rise)
    r = rows[0]
    ids = torch.from_numpy(r.input_ids)[None]
    with torch.inference_mode():
        h = hidden_states(inp.model, ids, torch.ones_like(ids))[0]
    t = np.flatnonzero(r.target_mask[1:])  # positions t - 1 of targets t >= 1
    np.testing.assert_allclose(means[-1, 0], h[t].double().mean(0).numpy(), rtol=1e-5, atol=1e-6)
    for layer in range(means.shape[0]):
        assert (cosine_scores(means[layer], means[layer]).argmax(axis=1) == np.arange(6)).all()
    res = diagnostic_entry("hidden_retrieval")(inp)
    assert len(res.sections[0].data) == inp.run.model.layers + 2  # embeddings, each block, RISE


def test_sparse_support_full_vocabulary_keeps_everything(diagnostic_inputs) -> None:
    inp = diagnostic_inputs("sparse_support")
    h, y = sample_tokens(inp, 200, seed=0)
    head = RiseHead.from_model(inp.model, inp.rise.replace(check_logits=False))
    full = support_stats(head, h, y, inp.rise.replace(topk=head.vocab_size, rho=1.0, tau=0.5))
    np.testing.assert_allclose(full["kept"].numpy(), 1.0, atol=1e-9)
    np.testing.assert_allclose(full["cos_gh"].numpy(), 1.0, atol=1e-9)
    kept = [float(support_stats(head, h, y, inp.rise.replace(topk=k, rho=1.0))["kept"].mean()) for k in (1, 4, 32)]
    assert kept == sorted(kept)
    res = diagnostic_entry("sparse_support")(
        diagnostic_inputs(
            "sparse_support",
            "stage.sparse_support.n_tokens=100",
            "stage.sparse_support.topks=[2,8]",
            "stage.sparse_support.taus=[0.1]",
            "stage.sparse_support.rhos=[1.0]",
        )
    )
    assert res.sections[0].data["support_size"].tolist() == [2.0, 8.0]


def test_extrapolation_uses_the_published_pythia_size() -> None:
    from rise_exp.run.config import RunConfig

    m = RunConfig.from_cfg(compose(["model=pythia-70m"])).model
    assert parameter_count(m) == 70_426_624  # Pythia paper, Table 1 (total parameters)
    e = memory_model.estimate(m, 512)
    assert e.weight_bytes == 4 * 70_426_624  # float32 weights
    assert e.peaks["RISE"] < e.peaks["RapidIn (c=1)"] < e.peaks["RapidIn (c=16)"]


def test_memory_stage_end_to_end(tiny_overrides, tiny_prepared, tmp_path) -> None:
    from rise_exp.cli import run

    overrides = [
        *tiny_overrides,
        "diagnostic=memory",
        "stage.memory.methods=[bm25]",
        "stage.memory.pool_sizes=[10]",
        "stage.memory.n_queries=2",
        "stage.memory.extrapolate=[pythia-70m,olmo-32b]",
    ]
    metrics = run(compose(overrides), tmp_path)
    for name in ("memory.md", "memory.csv", "memory_extrapolated.csv", "memory.png", "memory_extrapolated.png"):
        assert (tmp_path / name).exists(), name
    measured = (tmp_path / "memory.csv").read_text().splitlines()
    assert len(measured) == 2 and measured[1].startswith("bm25,10,2,")
    assert metrics["fits/pythia-70m/RISE"] == 1.0 and metrics["fits/olmo-32b/full-gradient TracIn"] == 0.0
    assert json.loads((tmp_path / "metrics.json").read_text())["bytes_per_row/bm25@10"] > 0


def test_identity_sketch_runs_the_attribute_stage(tiny_overrides, tiny_prepared, tmp_path) -> None:
    from rise_exp.cli import run

    metrics = run(compose([*tiny_overrides, "method.sketch=identity", "method.fusion=rh"]), tmp_path)
    model = tiny_prepared.ctx.model
    vocab, hidden = model.get_output_embeddings().weight.shape
    assert metrics["index_bytes_per_row"] == 2 * vocab * hidden  # the unsketched RH block, fp16
    assert 0.0 <= metrics["auprc@10"] <= 1.0
