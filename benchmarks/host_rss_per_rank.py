"""Peak host RSS per rank while loading a model, for 1 and 2 ranks (processes loading at the same time).

Saves a random GPT-NeoX of Pythia-410m's shape (float32 safetensors, ~1.6 GB) once, then starts 1 and 2
processes that each load it through ``rise_exp.models.loading.load_pretrained`` (meta-device init,
``low_cpu_mem_usage``, memory-mapped safetensors) and prints each rank's peak RSS over the checkpoint size.
A per-rank peak near 1x the weights (not 2x: an initialised model plus a loaded copy) is the target.

    python benchmarks/host_rss_per_rank.py [--layers 24 --hidden 1024]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import tempfile
from pathlib import Path


def _load(path: str, queue) -> None:
    import psutil

    from rise_exp.models.loading import load_pretrained

    base = psutil.Process().memory_info().rss
    model, _ = load_pretrained(path)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
    queue.put({"base_mb": base / 2**20, "peak_mb": peak / 2**20, "params": sum(p.numel() for p in model.parameters())})


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", type=int, default=24)
    ap.add_argument("--hidden", type=int, default=1024)
    args = ap.parse_args()
    from tokenizers import Tokenizer, models
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM, PreTrainedTokenizerFast

    with tempfile.TemporaryDirectory() as tmp:
        cfg = GPTNeoXConfig(
            vocab_size=50304,
            hidden_size=args.hidden,
            num_hidden_layers=args.layers,
            num_attention_heads=16,
            intermediate_size=4 * args.hidden,
        )
        GPTNeoXForCausalLM(cfg).save_pretrained(tmp)
        tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel({"<eos>": 0}, unk_token="<eos>")))
        tok.eos_token = "<eos>"
        tok.save_pretrained(tmp)
        size = sum(f.stat().st_size for f in Path(tmp).glob("*.safetensors")) / 2**20
        print(f"checkpoint: {size:,.0f} MB (float32)\n")
        print("| ranks | rank | RSS before load MB | peak RSS MB | growth / checkpoint |\n|---|---|---|---|---|")
        ctx = mp.get_context("spawn")
        for ranks in (1, 2):
            queue = ctx.Queue()
            procs = [ctx.Process(target=_load, args=(tmp, queue)) for _ in range(ranks)]
            for p in procs:
                p.start()
            results = [queue.get() for _ in procs]
            for p in procs:
                p.join()
            for r, res in enumerate(results):
                grown = (res["peak_mb"] - res["base_mb"]) / size
                print(f"| {ranks} | {r} | {res['base_mb']:,.0f} | {res['peak_mb']:,.0f} | {grown:.2f} |")
        print(json.dumps({"checkpoint_mb": size}))


if __name__ == "__main__":
    main()
