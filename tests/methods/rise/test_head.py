"""The batched head (slices, padding, chunking, prompt masking, Lightning) vs a plain per-row loop."""

from __future__ import annotations

import numpy as np
import torch
from transformers import GPTNeoXForCausalLM

from rise_exp.data.encoding import EncodedRow
from rise_exp.methods.rise import RiseConfig, RiseHead, RiseIndexingModule, SketchTables, compute_signatures
from rise_exp.methods.rise.indexing import predict_loader
from tests.helpers import cpu_trainer, tiny_lm

CFG = RiseConfig(
    fusion="rh+gh+rg",
    kr=32,
    kh=16,
    kg=8,
    lam_rg=0.5,
    topk=12,
    rho=0.9,
    min_keep=3,
    tau=0.5,
    chunk_len=12,
    chunk_overlap=4,
    max_tokens_per_batch=7,
)


def model() -> GPTNeoXForCausalLM:
    m = tiny_lm(400, intermediate_size=64)
    m.set_output_embeddings(torch.nn.Linear(32, 400, bias=True))  # a biased head
    return m.eval()


def make_rows() -> list[EncodedRow]:
    g = np.random.default_rng(0)
    rows = []
    for i, n in enumerate((5, 30, 12, 9, 27, 13)):
        mask = np.ones(n, dtype=bool)
        mask[0] = False
        if i % 2:  # prompt-masked rows: the first 40% are prompt
            mask[: int(0.4 * n)] = False
        rows.append(EncodedRow(row=10 + i, input_ids=g.integers(0, 400, n), target_mask=mask))
    return rows


def unit(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm()


def loop_signature(m, row: EncodedRow, cfg: RiseConfig, tables: SketchTables) -> torch.Tensor:
    """Plain reference: windows, then one token at a time with dense sketch matrices."""
    w = m.get_output_embeddings().weight.detach().double()
    b = m.get_output_embeddings().bias.detach().double()
    s_h, s_r, s_g = (t.matrix(torch.float64) for t in (tables.h, tables.r, tables.g))
    n, step = len(row), cfg.chunk_len - cfg.chunk_overlap
    starts = [0] if n <= cfg.chunk_len else list(range(0, n - cfg.chunk_overlap, step))
    chunk_sigs = []
    for st in starts:
        ids = torch.from_numpy(row.input_ids[st : st + cfg.chunk_len])
        mask = row.target_mask[st : st + cfg.chunk_len].copy()
        mask[0] = False
        if not mask.any():
            continue
        with torch.no_grad():
            hid = m.base_model(input_ids=ids[None]).last_hidden_state[0].double()
        acc = {"rh": 0.0, "gh": 0.0, "rg": 0.0}
        for t in np.flatnonzero(mask):
            h = hid[t - 1]
            s = (w @ h + b) / cfg.tau
            vals, idx = torch.topk(s, cfg.topk)
            idx = idx.tolist()
            y = int(ids[t])
            if y not in idx:
                idx[-1] = y
            p = torch.softmax(s[idx], 0)
            cut = int((p.cumsum(0) >= cfg.rho).nonzero()[0, 0]) + 1
            cut = max(cut, cfg.min_keep)
            keep = sorted(set(idx[:cut]) | {y})
            r = torch.zeros(400, dtype=torch.float64)
            r[keep] = torch.softmax(s[keep], 0)
            r[y] -= 1.0
            hv, rv, gv = unit(h @ s_h), unit(r @ s_r), unit((r @ w) @ s_g)
            acc["rh"] = acc["rh"] + torch.outer(rv, hv)
            acc["gh"] = acc["gh"] + torch.outer(gv, hv)
            acc["rg"] = acc["rg"] + torch.outer(rv, gv)
        phi = torch.cat([1.0 * acc["rh"].flatten(), 0.3 * acc["gh"].flatten(), 0.5 * acc["rg"].flatten()])
        chunk_sigs.append(unit(phi))
    return unit(torch.stack(chunk_sigs).mean(0))


def test_batched_head_matches_plain_loop_with_chunks_masks_and_padding() -> None:
    m = model()
    rows = make_rows()
    tables = SketchTables.create(CFG, 400, 32)
    got = compute_signatures(m, 0, rows, CFG, tables, batch_tokens=40)  # several padded batches
    assert got.shape == (len(rows), CFG.signature_dim)
    for i, row in enumerate(rows):
        want = loop_signature(m, row, CFG, tables).float().numpy()
        cos = float(got[i] @ want / (np.linalg.norm(got[i]) * np.linalg.norm(want)))
        assert cos > 0.9999, (i, cos)
    # prompt masking matters: the masked rows differ from their unmasked versions
    plain = EncodedRow(row=0, input_ids=rows[1].input_ids, target_mask=np.r_[False, np.ones(29, bool)])
    other = compute_signatures(m, 0, [plain], CFG, tables)[0]
    assert float(other @ got[1]) < 0.999


def test_chunk_cap_bounds_every_batch_and_leaves_signatures_unchanged() -> None:
    from rise_exp.methods.rise.chunking import chunk_row, plan_batches

    rows = make_rows()
    counts = {r.row: len(chunk_row(r, CFG)) for r in rows}
    longest = {r.row: max(len(c) for c in chunk_row(r, CFG)) for r in rows}
    assert max(counts.values()) >= 2  # the 27- and 30-token rows span two chunks
    for cap in (1, 2, 3):
        plan = plan_batches(rows, CFG, 10_000, max_chunks=cap)
        assert sorted(r for b in plan for r in b) == sorted(counts)
        for b in plan:  # within the cap, or one row whose chunks alone exceed it
            assert sum(counts[r] for r in b) <= cap or len(b) == 1
    assert len(plan_batches(rows, CFG, 10_000)) == 1  # no cap: one batch holds them all
    for b in plan_batches(rows, CFG, 40, max_chunks=2):  # both budgets hold together
        assert len(b) == 1 or max(longest[r] for r in b) * sum(counts[r] for r in b) <= 40
    m = model()
    tables = SketchTables.create(CFG, 400, 32)
    capped = compute_signatures(m, 0, rows, CFG, tables, batch_tokens=10_000, batch_chunks=1)
    whole = compute_signatures(m, 0, rows, CFG, tables, batch_tokens=10_000, batch_chunks=None)
    np.testing.assert_allclose(capped, whole, rtol=0, atol=2e-6)


def test_padding_to_a_multiple_bounds_batch_shapes_and_leaves_signatures_unchanged() -> None:
    from dataclasses import replace

    from rise_exp.methods.rise.chunking import chunk_row, padded_length, plan_batches

    cfg = replace(CFG, chunk_len=40, chunk_overlap=8)
    g = np.random.default_rng(1)
    rows = []
    for i, n in enumerate(range(3, 48)):  # 45 rows, 45 lengths; the longest span two chunks
        mask = np.ones(n, dtype=bool)
        mask[0] = False
        rows.append(EncodedRow(row=i, input_ids=g.integers(0, 400, n), target_mask=mask))
    assert [padded_length(n, cfg, 8) for n in (1, 8, 9, 33, 39, 40)] == [8, 8, 16, 40, 40, 40]  # capped at chunk_len
    assert padded_length(13, cfg, 1) == 13
    longest = {r.row: max(len(c) for c in chunk_row(r, cfg)) for r in rows}
    counts = {r.row: len(chunk_row(r, cfg)) for r in rows}

    def shapes(multiple: int) -> set[tuple[int, int]]:
        plan = plan_batches(rows, cfg, 96, max_chunks=6, pad_multiple=multiple)
        assert sorted(r for b in plan for r in b) == sorted(counts)
        out = set()
        for b in plan:
            length = padded_length(max(longest[r] for r in b), cfg, multiple)
            n = sum(counts[r] for r in b)
            assert len(b) == 1 or length * n <= 96  # the budget counts the padded length
            out.add((n, length))
        return out

    assert len(shapes(8)) < len(shapes(1))  # padding to a multiple: fewer batch shapes
    assert {length for _, length in shapes(8)} <= {8, 16, 24, 32, 40}
    assert len({length for _, length in shapes(1)}) > 5
    # the collated batches are padded to the planned length; the signatures do not change
    batch = next(iter(predict_loader(rows, cfg, pad_id=0, batch_tokens=96, batch_chunks=6, pad_multiple=8)))
    assert batch["input_ids"].shape[1] % 8 == 0
    m = model()
    tables = SketchTables.create(cfg, 400, 32)
    padded = compute_signatures(m, 0, rows, cfg, tables, batch_tokens=96, batch_chunks=6, pad_multiple=8)
    tight = compute_signatures(m, 0, rows, cfg, tables, batch_tokens=96, batch_chunks=6, pad_multiple=1)
    np.testing.assert_allclose(padded, tight, rtol=0, atol=2e-6)


def test_lightning_predict_step_and_overlap_context_only() -> None:
    m = model()
    rows = make_rows()
    tables = SketchTables.create(CFG, 400, 32)
    module = RiseIndexingModule(m, CFG, tables)
    outs = [module.predict_step(b, i) for i, b in enumerate(predict_loader(rows, CFG, pad_id=0, batch_tokens=60))]
    got = {int(r): s for o in outs for r, s in zip(o["rows"], o["signatures"])}
    assert sorted(got) == [r.row for r in rows]
    ref = compute_signatures(m, 0, rows, CFG, tables)
    for i, r in enumerate(rows):
        assert np.allclose(got[r.row].numpy(), ref[i], atol=1e-5)
    # overlap tokens as context only changes only rows with several chunks
    ctx = compute_signatures(m, 0, rows, RiseConfig(**{**CFG.to_dict(), "overlap_targets": False}), tables)
    assert np.allclose(ctx[0], ref[0], atol=1e-6)  # 5 tokens: one chunk
    assert float(ctx[1] @ ref[1]) < 0.9999  # 30 tokens: three chunks


def test_gh_identity_equals_projected_error() -> None:
    m = model()
    cfg = RiseConfig(
        fusion="gh", sketch="identity", tau=1.0, full_support=True, normalize_tokens=False, normalize_signature=False
    )
    row = make_rows()[2]
    head = RiseHead.from_model(m, cfg)
    got = torch.from_numpy(compute_signatures(m, 0, [row], cfg, head=head)[0]).double()
    ids = torch.from_numpy(row.input_ids)
    with torch.no_grad():
        hid = m.base_model(input_ids=ids[None]).last_hidden_state[0].double()
        w, b = m.get_output_embeddings().weight.double(), m.get_output_embeddings().bias.double()
        pos = torch.from_numpy(np.flatnonzero(row.target_mask))
        r = torch.softmax(hid[pos - 1] @ w.T + b, 1) - torch.nn.functional.one_hot(ids[pos], 400).double()
        want = cfg.lam_gh * ((r @ w).T @ hid[pos - 1]).flatten()  # lam_gh sum_t (W^T r_t) (x) h_t
    assert torch.allclose(got, want, rtol=1e-4, atol=1e-5)


def test_trainer_predict_returns_one_signature_per_row() -> None:
    m = model()
    rows = make_rows()
    tables = SketchTables.create(CFG, 400, 32)
    trainer = cpu_trainer()
    outs = trainer.predict(RiseIndexingModule(m, CFG, tables), predict_loader(rows, CFG, pad_id=0, batch_tokens=60))
    rows_out = torch.cat([o["rows"] for o in outs])
    sigs = torch.cat([o["signatures"] for o in outs])
    assert sorted(rows_out.tolist()) == [r.row for r in rows]
    ref = compute_signatures(m, 0, rows, CFG, tables)
    order = {r.row: i for i, r in enumerate(rows)}
    for r, s in zip(rows_out.tolist(), sigs):
        assert np.allclose(s.numpy(), ref[order[r]], atol=1e-5)
