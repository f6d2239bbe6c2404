"""GPU acceptance check, offline (no hub): run with ``make gpu-check`` or ``experiments/gpu_check.sh``.

1. Every method (RISE, RapidIn, ZO-Inf, STRIDE, BM25, and EK-FAC / TrackStar where kronfluence / bergson are
   installed) on a tiny GPT-NeoX on the device (``trainer=gpu``-style placement, fp32 and bf16-mixed)
   against the CPU in fp32: score matrices compared by cosine and top-1 agreement, within the stated
   tolerances (fp32: cosine >= 0.999; bf16-mixed: :data:`BF16_TOL`); each with its build's tokens/s and
   peak device memory.
2. Every stage (attribute, query, valuate, select, explain, probe, lds, removal, closed loop) of a tiny run
   with ``trainer=gpu`` against the same run on the CPU (``experiments/gpu_check_stages.py``).
3. The mission's shapes with random weights: Pythia 1B, Pythia 6.9B and OLMo 2 32B (catalogue facts,
   built on the meta device, materialised on the device in bf16), each indexing a few thousand tokens with
   RISE under bf16 autocast: tokens/s, RISE time over a bare forward, peak memory next to the memory
   model's prediction (:mod:`rise_exp.methods.memory_model`). A shape that does not fit one device is
   listed as needing ``model.device_map`` (more GPUs) instead of run.

``GPU_CHECK_DEVICE=cpu`` is the dry run: the same code on the CPU with tiny shapes (CI, under 3 minutes).
Exit status 1 when a comparison is outside its tolerance.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import tempfile
import time
from dataclasses import replace

import numpy as np
import torch

from rise_exp.config.model import ModelConfig
from rise_exp.config.run_settings import DEFAULT_SEED
from rise_exp.config.trainer import TrainerConfig
from rise_exp.data.encoding import EncodedRow
from rise_exp.data.records import Record
from rise_exp.methods.base import MethodContext, seeded
from rise_exp.methods.memory_model import estimate
from rise_exp.methods.registry import config_class
from rise_exp.methods.rise.config import RiseMethodConfig
from rise_exp.methods.rise.head import RiseHead
from rise_exp.methods.rise.signatures import compute_signatures
from rise_exp.methods.rise.sketch import SketchTables
from rise_exp.methods.rise.trunk import base_model
from rise_exp.models.catalogue import parameter_count
from rise_exp.models.placement import Placement
from rise_exp.run.config import compose
from rise_exp.run.runner import attribution_scores, build_on

GB = 1e9
WORDS = "the a bank loan rate stock market patient doctor dose blood heart star ship robot river howdy".split()
METHODS = {
    "rise": {"kr": 64, "kh": 16, "kg": 32},
    "rapidin": {"k": 4096, "compress_batch": 4},
    "zo_inf": {},
    "stride": {"steps": 5, "operators_per_step": 8, "max_subsets": 16, "subsets_per_example": 2, "rank": 4},
    "bm25": {},
    # the empirical Fisher: the true Fisher's sampled labels could differ between devices at a near-tie
    "ekfac": {"empirical_fisher": True, "factor_batch": 8, "train_batch": 8, "query_batch": 8},
    "trackstar": {"projection_dim": 8, "batch_rows": 8},
}
#: The library each reference method needs (skipped, and said so, where it is not installed).
LIBRARIES = {"ekfac": "kronfluence", "trackstar": "bergson"}
FP32_TOL = 0.999  # cosine of score matrices against the CPU fp32 run
#: bf16-mixed on the device, per method (on the dry run RISE only: the CPU's bf16 paths are unit-tested).
#: ZO-Inf scores differences of checkpoint losses, which bf16 forwards round (cosine 0.974 on the CPU's bf16);
#: TrackStar collects outside autocast (bergson's clamp), so it keeps the fp32 tolerance.
BF16_TOL = {"rise": 0.99, "rapidin": 0.99, "stride": 0.99, "ekfac": 0.99, "trackstar": 0.999, "zo_inf": 0.95}


def device() -> torch.device:
    want = os.environ.get("GPU_CHECK_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(want)
    return torch.device("cuda", 0) if dev.type == "cuda" and dev.index is None else dev  # as placement names it


def tiny_setup(tmp: str):
    """A word-level tokenizer, a tiny GPT-NeoX (2 saved checkpoints for ZO-Inf), pool and queries."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM, PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(["<pad>", "<eos>", "<unk>", *WORDS])}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>")
    torch.manual_seed(0)
    cfg = GPTNeoXConfig(
        vocab_size=len(vocab), hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128
    )
    model = GPTNeoXForCausalLM(cfg).eval()
    paths = []
    for e in range(2):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.01 * e)
        model.save_pretrained(f"{tmp}/epoch{e}")
        paths.append(f"{tmp}/epoch{e}")
    rng = np.random.default_rng(0)
    pool = [Record(id=f"t{i}", text=" ".join(rng.choice(WORDS, int(rng.integers(4, 12))))) for i in range(16)]
    queries = [Record(id=f"q{i}", text=" ".join(rng.choice(WORDS, 8))) for i in range(5)]
    return tok, paths, pool, queries


def method_scores(
    name: str, dev: torch.device, precision: str, tok, paths, pool, queries, tmp: str
) -> tuple[np.ndarray, float]:
    """The method's score matrix on ``dev`` and its build time in seconds."""
    from pathlib import Path

    from transformers import GPTNeoXForCausalLM

    trainer = TrainerConfig(accelerator="gpu" if dev.type == "cuda" else "cpu", precision=precision)
    placement = Placement(dev, torch.bfloat16 if precision == "bf16-mixed" else None)
    model = placement.place(GPTNeoXForCausalLM.from_pretrained(paths[-1]).eval())
    work = f"{tmp}/{name}-{dev.type}-{precision}"
    ctx = MethodContext(
        model=model,
        tokenizer=tok,
        work_dir=Path(work),
        index_root=Path(work),
        trainer=trainer,
        placement=placement,
        checkpoints=[Path(p) for p in paths],
        max_length=64,
        seed=3,
    )
    built = build_on(config_class(name).from_mapping({"name": name, **METHODS[name]}), ctx, pool)
    return attribution_scores(built, queries)[0], built.build_seconds


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float((a * b).sum() / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-30))


def pool_tokens(tok, pool) -> int:
    return sum(len(tok(r.full_text)["input_ids"]) for r in pool)


def peak_gb(dev: torch.device) -> str:
    return f"{torch.cuda.max_memory_allocated(dev) / GB:.2f}" if dev.type == "cuda" else "n/a"


def reset_peak(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(dev)


def check_methods(dev: torch.device) -> bool:
    ok = True
    print(f"\n## every method on {dev} against the CPU (fp32)\n")
    print(
        "| method | precision | cosine vs CPU | top-1 agree | tolerance | ok | build tokens/s | peak device GB |"
        "\n|---|---|---|---|---|---|---|---|"
    )
    with tempfile.TemporaryDirectory() as tmp:
        tok, paths, pool, queries = tiny_setup(tmp)
        tokens = pool_tokens(tok, pool)
        for name in METHODS:
            lib = LIBRARIES.get(name)
            if lib and importlib.util.find_spec(lib) is None:
                print(f"| {name} | - | - | - | - | skipped ({lib} is not installed) | - | - |")
                continue
            try:
                ref, _ = method_scores(name, torch.device("cpu"), "32-true", tok, paths, pool, queries, tmp)
            except Exception as exc:  # one failing method is reported; the others still run
                print(f"| {name} | 32-true | ERROR on the CPU: {type(exc).__name__}: {exc} | - | - | NO | - | - |")
                ok = False
                continue
            for precision, tol in (("32-true", FP32_TOL), ("bf16-mixed", BF16_TOL.get(name))):
                if precision == "bf16-mixed" and (tol is None or (dev.type == "cpu" and name != "rise")):
                    continue
                reset_peak(dev)
                try:
                    got, seconds = method_scores(name, dev, precision, tok, paths, pool, queries, f"{tmp}/d")
                except Exception as exc:
                    print(f"| {name} | {precision} | ERROR: {type(exc).__name__}: {exc} | - | - | NO | - | - |")
                    ok = False
                    continue
                c, top1 = cosine(ref, got), float((ref.argmax(1) == got.argmax(1)).mean())
                good = c >= tol
                ok &= good
                rate = f"{tokens / max(seconds, 1e-9):,.0f}"
                print(
                    f"| {name} | {precision} | {c:.6f} | {top1:.2f} | >= {tol} | {'yes' if good else 'NO'} | {rate} | "
                    f"{peak_gb(dev)} |"
                )
    return ok


def shapes(dev: torch.device) -> list[ModelConfig]:
    """Pythia 1B, 6.9B and OLMo 2 32B from the catalogue (tiny versions of their architectures on the CPU)."""
    out = []
    for name in ("pythia-1b", "pythia-6.9b", "olmo-32b"):
        m = ModelConfig.from_mapping(dict(compose([f"model={name}"]).model))
        if dev.type == "cpu":
            small = {"layers": 2, "hidden_size": 64, "heads": 4, "vocab_size": 512, "intermediate_size": 128}
            m = replace(m, name=f"{name}-tiny", kv_heads=4 if m.kv_heads else None, **small)
        out.append(m)
    return out


def random_model(m: ModelConfig, dev: torch.device):
    """``m``'s architecture with random bf16 weights: built on the meta device, materialised on ``dev``."""
    from transformers import AutoModelForCausalLM, GPTNeoXConfig, Olmo2Config

    common = dict(
        vocab_size=m.vocab_size,
        hidden_size=m.hidden_size,
        num_hidden_layers=m.layers,
        num_attention_heads=m.heads,
        intermediate_size=m.intermediate_size or 4 * m.hidden_size,
        max_position_embeddings=m.max_position,
    )
    if m.arch == "gpt_neox":
        cfg = GPTNeoXConfig(**common)
    else:
        cfg = Olmo2Config(**common, num_key_value_heads=m.kv_heads or m.heads)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16)
    model = model.to_empty(device=dev)
    gen = torch.Generator(device=dev).manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.02, generator=gen) if p.dim() > 1 else p.fill_(1.0 if p.dim() == 1 else 0.0)
        for name, b in model.named_buffers():  # rotary frequencies were meta tensors too: rebuild them
            if "inv_freq" in name:
                d = b.numel() * 2
                base = float(getattr(cfg, "rope_theta", None) or 10000.0)
                b.copy_(1.0 / (base ** (torch.arange(0, d, 2, device=dev, dtype=torch.float32) / d)))
    return model.eval()


def timed(fn, dev: torch.device) -> float:
    """Seconds ``fn()`` takes, the device synchronised before and after."""
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    t0 = time.perf_counter()
    fn()
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    return time.perf_counter() - t0


def measure_shape(m: ModelConfig, dev: torch.device, tokens: int, seq: int, rise: RiseMethodConfig) -> str:
    """One table row: RISE over ``tokens`` random tokens on a random-weight ``m`` against a bare forward."""
    if dev.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(dev)
    model = random_model(m, dev)
    rng = np.random.default_rng(0)
    rows = [
        EncodedRow(i, rng.integers(0, m.vocab_size, seq).astype(np.int64), np.r_[False, np.ones(seq - 1, bool)])
        for i in range(max(1, tokens // seq))
    ]
    cfg = seeded(rise, DEFAULT_SEED).signature_config()  # a method seed left null is the global seed
    head = RiseHead.from_model(model, cfg, SketchTables.members(cfg, m.vocab_size, m.hidden_size))
    placement = Placement(dev, torch.bfloat16)

    def forward() -> None:
        trunk = base_model(model)
        with torch.inference_mode(), placement.autocast():
            for i in range(0, len(rows), 4):
                ids = torch.from_numpy(np.stack([r.input_ids for r in rows[i : i + 4]])).to(dev)
                trunk(input_ids=ids, use_cache=False)

    def signatures() -> None:
        with placement.autocast():
            compute_signatures(model, 0, rows, cfg, head=head, batch_tokens=rise.index.batch_tokens)

    signatures()  # warm-up: kernels, the head's check against the model's logits
    t_rise, t_fwd = timed(signatures, dev), timed(forward, dev)
    peak = peak_gb(dev)
    n = len(rows) * seq
    return f"{n / t_rise:,.0f} | {n / t_fwd:,.0f} | {t_rise / t_fwd:.2f} | {peak}"


def check_shapes(dev: torch.device, tokens: int, seq: int) -> None:
    print(f"\n## the mission's shapes, random bf16 weights, RISE over {tokens} tokens on {dev}\n")
    print(
        "| model | parameters | tokens/s (RISE) | tokens/s (forward) | RISE / forward | peak GB | predicted GB |"
        "\n|---|---|---|---|---|---|---|"
    )
    rise = RiseMethodConfig()
    for m in shapes(dev):
        p = parameter_count(m)
        predicted = estimate(m, seq, rise=rise).peaks["RISE"]
        total = torch.cuda.mem_get_info(dev)[1] if dev.type == "cuda" else float("inf")
        if predicted > 0.95 * total:
            print(f"| {m.name} | {p / 1e9:.1f}B | - | - | - | - | {predicted / GB:.1f} (needs model.device_map) |")
            continue
        print(f"| {m.name} | {p / 1e9:.2f}B | {measure_shape(m, dev, tokens, seq, rise)} | {predicted / GB:.1f} |")


def main() -> int:
    dev = device()
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "CPU (dry run)"
    print(f"# rise-exp GPU check on {name}, torch {torch.__version__}")
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False  # fp32 comparisons against the CPU
    t0 = time.perf_counter()
    ok = check_methods(dev)
    with tempfile.TemporaryDirectory() as tmp:
        from pathlib import Path

        from gpu_check_stages import check_stages

        ok &= check_stages(dev, Path(tmp))
    tokens, seq = (4096, 512) if dev.type == "cuda" else (256, 64)
    check_shapes(dev, tokens, seq)
    print(
        f"\n{'all comparisons within tolerance' if ok else 'FAILED: a comparison is outside its tolerance'}"
        f" ({time.perf_counter() - t0:.0f} s)"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
