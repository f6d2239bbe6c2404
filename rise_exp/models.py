"""Model and tokenizer loading: any Hugging Face causal LM, or an embedded tiny model built from config.

One path loads hub ids (pinned by revision), local directories, GGUF files (converted once, see
:mod:`rise_exp.gguf`) and PEFT adapters on top of any of them; the architecture comes from the
checkpoint's own config. Embedded models (``source: embedded``) need no network: a byte-level BPE
tokenizer is trained on the task's text with the ``tokenizers`` library and a small GPT-NeoX or OLMo 2
is initialised from config; both are cached under ``paths.cache_dir`` by a hash of everything they
depend on. From then on the code path is the same for every model.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch

from rise_exp import progress
from rise_exp.config.model import ModelConfig
from rise_exp.errors import ConfigError
from rise_exp.hashing import config_hash
from rise_exp.identity import identify_model
from rise_exp.locks import cache_lock

log = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16, "float64": torch.float64}
SPECIAL_TOKENS = ("<|endoftext|>", "<|padding|>")


def approx_parameters(cfg: ModelConfig) -> int:
    """Parameter count estimated from the catalogue's architecture facts alone (no loading)."""
    if not cfg.has_facts:
        raise ConfigError(f"model {cfg.name!r} states no architecture facts (model.layers, ...) to estimate from")
    d, layers, vocab = cfg.hidden_size, cfg.layers, cfg.vocab_size
    ffn = cfg.intermediate_size or 4 * d
    return layers * (4 * d * d + 2 * d * ffn) + 2 * vocab * d


def train_tokenizer(texts: Iterable[str], vocab_size: int, min_frequency: int = 2):
    """Train a byte-level BPE tokenizer on ``texts`` and wrap it as a ``PreTrainedTokenizerFast``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=progress.enabled(),
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token=SPECIAL_TOKENS[0], bos_token=SPECIAL_TOKENS[0], pad_token=SPECIAL_TOKENS[1]
    )


def build_tiny_model(spec: ModelConfig, vocab_size: int):
    """Initialise a small causal LM of ``spec.arch`` from config (seeded by ``spec.init_seed``)."""
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM, Olmo2Config, Olmo2ForCausalLM

    common = dict(
        vocab_size=vocab_size,
        hidden_size=spec.hidden_size,
        num_hidden_layers=spec.layers,
        num_attention_heads=spec.heads,
        intermediate_size=spec.intermediate_size or 4 * spec.hidden_size,
        max_position_embeddings=spec.max_position,
        tie_word_embeddings=False,
        bos_token_id=0,
        eos_token_id=0,
        pad_token_id=1,
    )
    torch.manual_seed(spec.init_seed)
    if spec.arch == "gpt_neox":
        model = GPTNeoXForCausalLM(GPTNeoXConfig(**common, use_parallel_residual=True))
    else:
        model = Olmo2ForCausalLM(Olmo2Config(**common, num_key_value_heads=spec.kv_heads or spec.heads))
    return model.to(DTYPES[spec.dtype])


def embedded_dir(spec: ModelConfig, texts: Iterable[str], cache_dir: Path) -> Path:
    """Cache directory of an embedded model: keyed by its config and the tokenizer training text (the sha256 of
    the texts joined by newlines, streamed)."""
    h = hashlib.sha256()
    for i, t in enumerate(texts):
        h.update((t if i == 0 else "\n" + t).encode())
    text_hash = h.hexdigest()[:12]
    return Path(cache_dir) / "models" / f"{spec.name}-{config_hash(spec.to_dict())}-{text_hash}"


def prepare_embedded(spec: ModelConfig, texts: Sequence[str], cache_dir: Path) -> Path:
    """Train the tokenizer and initialise the tiny model unless cached; return the HF directory.

    Concurrent runs build it once: the builder holds ``<dir>.lock``, the others wait and reuse it.
    """
    out = embedded_dir(spec, texts, cache_dir)
    if (out / "READY").exists():
        return out
    with cache_lock(out, f"the embedded tokenizer and model {out.name}"):
        if not (out / "READY").exists():
            _build_embedded(spec, texts, out)
    return out


def _build_embedded(spec: ModelConfig, texts: Sequence[str], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    log.info("training a %d-token BPE tokenizer on %d texts for %s", spec.vocab_size, len(texts), spec.name)
    tokenizer = train_tokenizer(texts, spec.vocab_size)
    model = build_tiny_model(spec, vocab_size=len(tokenizer))
    model.config.bos_token_id = model.config.eos_token_id = tokenizer.eos_token_id
    model.config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / "READY").write_text(f"embedded:{spec.name}\n")


def _is_adapter(path: str | Path) -> bool:
    return (Path(path) / "adapter_config.json").is_file()


def load_pretrained(
    path_or_id: str | Path,
    *,
    revision: str | None = None,
    dtype: str = "float32",
    trust_remote_code: bool = False,
    merge_adapter: bool = False,
):
    """Load an HF causal LM and its tokenizer; a pad token is set to EOS when missing.

    A PEFT adapter directory (``adapter_config.json``) loads its base model (``base_model_name_or_path``)
    with the adapter applied: kept as LoRA layers inside the model (the same function as the merged
    weights, and the adapter's parameters stay addressable, e.g. for RapidIn ``lora=true``), or merged
    into the weights with ``merge_adapter``.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if _is_adapter(path_or_id):
        import json

        base = json.loads((Path(path_or_id) / "adapter_config.json").read_text()).get("base_model_name_or_path")
        model, tokenizer = load_pretrained(base, dtype=dtype, trust_remote_code=trust_remote_code)
        if (Path(path_or_id) / "tokenizer_config.json").is_file():
            tokenizer = AutoTokenizer.from_pretrained(str(path_or_id))
        model = apply_adapter(model, path_or_id, merge=merge_adapter)
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        return model, tokenizer
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            str(path_or_id), revision=revision, trust_remote_code=trust_remote_code
        )
        model = AutoModelForCausalLM.from_pretrained(
            str(path_or_id), revision=revision, dtype=DTYPES[dtype], trust_remote_code=trust_remote_code
        )
    except OSError as e:  # not found / no network
        raise ConfigError(
            f"cannot load model {path_or_id!r} (revision {revision!r}): {str(e).splitlines()[0]} -- check "
            "model.hub_id, the network / HF_HUB_OFFLINE, or use an embedded model (model=tiny-pythia or "
            "model=tiny-olmo)"
        ) from None
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def apply_adapter(model: torch.nn.Module, adapter: str | Path, *, merge: bool) -> torch.nn.Module:
    """``model`` with the PEFT adapter at ``adapter`` applied (merged into the weights, or as LoRA layers)."""
    try:
        from peft import PeftModel
    except ImportError:
        raise ConfigError(
            f"adapter {adapter}: loading LoRA adapters needs peft (pip install 'rise-exp[lora]')"
        ) from None
    if not _is_adapter(adapter):
        raise ConfigError(f"model.adapter {str(adapter)!r} is not a PEFT adapter directory (no adapter_config.json)")
    peft_model = PeftModel.from_pretrained(model, str(adapter))
    return peft_model.merge_and_unload() if merge else peft_model.get_base_model()


def resolve_weights(spec: ModelConfig, texts: Sequence[str], cache_dir: Path) -> tuple[str | Path, str | None]:
    """Where ``from_pretrained`` finds the starting weights: ``(directory or hub id, revision)``.

    Embedded models are built (cached); GGUF files are converted once to a cached float directory.
    """
    if spec.source == "embedded":
        return prepare_embedded(spec, texts, cache_dir), None
    if spec.gguf_file:
        from rise_exp.gguf import convert_gguf, gguf_location

        where, identity = gguf_location(spec.source, spec.package or spec.hub_id or "", spec.gguf_file)
        out = Path(cache_dir) / "models" / f"gguf-{spec.name}-{config_hash(identity)}"
        if not (out / "READY").exists():
            with cache_lock(out, f"the GGUF conversion {out.name}"):
                convert_gguf(where, spec.gguf_file, out, revision=spec.revision)
        return out, None
    return str(spec.hub_id), spec.revision


def merged_adapter_dir(spec: ModelConfig, path: str | Path, revision: str | None, cache_dir: Path) -> Path:
    """The weights at ``path`` with ``model.adapter`` merged in, saved once as a full checkpoint in the cache.

    A run's starting weights must live in one directory: a LoRA finetune on top records it as its base
    (``base_model_name_or_path``) and an index records it as the model that serves it, so merging only
    in memory would reload later without the adapter.
    """
    out = Path(cache_dir) / "models" / f"merged-{spec.name}-{config_hash(identify_model(spec, path, cache_dir))}"
    if not (out / "READY").exists():
        with cache_lock(out, f"the merged checkpoint {out.name}"):
            if not (out / "READY").exists():
                log.info("merging adapter %s into %s: a full checkpoint in %s (once)", spec.adapter, path, out)
                model, tokenizer = load_pretrained(
                    path, revision=revision, dtype=spec.dtype, trust_remote_code=spec.trust_remote_code
                )
                model = apply_adapter(model, str(spec.adapter), merge=True)
                out.mkdir(parents=True, exist_ok=True)
                model.save_pretrained(out)
                tokenizer.save_pretrained(out)
                (out / "READY").write_text(f"{path} + adapter {spec.adapter}\n")
    return out


def start_weights(spec: ModelConfig, texts: Sequence[str], cache_dir: Path) -> tuple[str | Path, str | None]:
    """``(path or hub id, revision)`` of a run's starting weights: :func:`resolve_weights`, with
    ``model.adapter`` merged into a cached checkpoint (:func:`merged_adapter_dir`) when set."""
    path, revision = resolve_weights(spec, texts, cache_dir)
    if spec.adapter:
        return merged_adapter_dir(spec, path, revision, cache_dir), None
    return path, revision


def load_base_model(spec: ModelConfig, texts: Sequence[str], cache_dir: Path):
    """The starting model of a run and its tokenizer (``model.adapter`` merged in when set).

    Args:
        spec: The model settings.
        texts: Task text, used to train an embedded model's tokenizer.
        cache_dir: ``paths.cache_dir``.

    Returns:
        ``(model, tokenizer, source_path)``; ``source_path`` is what ``from_pretrained`` loaded.

    Raises:
        ConfigError: weights that cannot be found or read, or a head RISE cannot use.
    """
    path, revision = start_weights(spec, texts, cache_dir)
    model, tokenizer = load_pretrained(
        path, revision=revision, dtype=spec.dtype, trust_remote_code=spec.trust_remote_code
    )
    head = model.get_output_embeddings()
    if head is None or not isinstance(head, torch.nn.Linear):
        raise ConfigError(
            f"model {spec.name!r}: the LM head is not a plain nn.Linear unembedding ({type(head).__name__})"
        )
    return model, tokenizer, path
