"""Indexing throughput: a bare forward pass vs RISE signatures (trunk + head), on the same batches.

Models are Pythia-shaped GPT-NeoX with random weights (no download). The forward pass runs the full
model including the full-vocabulary logits under ``torch.inference_mode``; RISE runs the base model
(final-norm hidden states) and the RISE head. Per batch, the two are timed alternately and the best of
``--repeats`` is kept (the machine may be shared; the best time is the least disturbed one).

    python benchmarks/bench_index.py [--models 70m,14m] [--seqs 16] [--seq-len 256] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from collections.abc import Callable

import torch
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

from rise_exp.methods.rise.config import RiseConfig
from rise_exp.methods.rise.head import RiseHead
from rise_exp.methods.rise.trunk import hidden_states

SHAPES = {
    "pythia-70m": dict(hidden_size=512, num_hidden_layers=6, num_attention_heads=8, intermediate_size=2048),
    "pythia-14m": dict(hidden_size=128, num_hidden_layers=6, num_attention_heads=4, intermediate_size=512),
}
VOCAB = 50304


def build_model(name: str, seed: int = 0) -> GPTNeoXForCausalLM:
    """A randomly initialised Pythia-shaped GPT-NeoX in eval mode."""
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


def bench(
    name: str, seqs: int, seq_len: int, batch: int, repeats: int, cfg: RiseConfig
) -> dict[str, float | str | int]:
    model = build_model(name)
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, VOCAB, (seqs, seq_len), generator=g)
    att = torch.ones_like(ids)
    tgt = torch.ones_like(ids, dtype=torch.bool)
    tgt[:, 0] = False
    batches = [(ids[i : i + batch], att[i : i + batch], tgt[i : i + batch]) for i in range(0, seqs, batch)]
    head = RiseHead.from_model(model, cfg)
    head.verify(model, ids[:1], att[:1])

    @torch.inference_mode()
    def forward(i: torch.Tensor, a: torch.Tensor, t: torch.Tensor) -> None:
        _ = model(input_ids=i, attention_mask=a, use_cache=False).logits

    @torch.inference_mode()
    def rise(i: torch.Tensor, a: torch.Tensor, t: torch.Tensor) -> None:
        head.chunk_signatures(hidden_states(model, i, a), i, t)

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
    tokens = seqs * seq_len
    return {
        "model": name,
        "tokens": tokens,
        "forward_tokens_per_s": tokens / fwd,
        "rise_tokens_per_s": tokens / rs,
        "rise_over_forward_time": rs / fwd,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="70m,14m", help="comma-separated subset of 70m,14m")
    ap.add_argument("--seqs", type=int, default=16)
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--batch", type=int, default=4, help="sequences per batch")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--max-tokens-per-batch", type=int, default=RiseConfig.max_tokens_per_batch)
    ap.add_argument("--json", default=None, help="write the results as a JSON list here")
    args = ap.parse_args()
    cfg = RiseConfig(max_tokens_per_batch=args.max_tokens_per_batch)
    rows = [
        bench(f"pythia-{m.strip()}", args.seqs, args.seq_len, args.batch, args.repeats, cfg)
        for m in args.models.split(",")
    ]
    print(f"{'model':<12}{'tokens':>8}{'fwd tok/s':>12}{'rise tok/s':>12}{'rise/fwd':>10}{'peak MB':>10}")
    for r in rows:
        print(
            f"{r['model']:<12}{r['tokens']:>8}{r['forward_tokens_per_s']:>12.0f}{r['rise_tokens_per_s']:>12.0f}"
            f"{r['rise_over_forward_time']:>10.2f}{r['peak_rss_mb']:>10.0f}"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
