"""Embedded models (``source: embedded``) need no network: a byte-level BPE tokenizer is trained on the task's
text with the ``tokenizers`` library and a small GPT-NeoX or OLMo 2 is initialised from config; both are
cached under ``paths.cache_dir`` by a hash of everything they depend on."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch

from rise_exp.config.model import ModelConfig
from rise_exp.core import progress, sealed
from rise_exp.core.hashing import config_hash
from rise_exp.core.locks import cache_lock
from rise_exp.models.loading import DTYPES

log = logging.getLogger(__name__)

SPECIAL_TOKENS = ("<|endoftext|>", "<|padding|>")


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
    return Path(cache_dir) / "models" / f"{spec.name}-{config_hash(spec.weights_settings())}-{text_hash}"


def prepare_embedded(spec: ModelConfig, texts: Sequence[str], cache_dir: Path) -> Path:
    """Train the tokenizer and initialise the tiny model unless cached; return the HF directory.

    Concurrent runs build it once: the builder holds ``<dir>.lock``, the others wait and reuse it. The
    directory is sealed (:mod:`rise_exp.core.sealed`); a damaged or unsealed one is rebuilt with a warning.
    """
    out = embedded_dir(spec, texts, cache_dir)
    if sealed.problem(out) is None:
        return out
    with cache_lock(out, f"the embedded tokenizer and model {out.name}"):
        if not sealed.reusable(out, "the embedded tokenizer and model"):
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
    sealed.seal(out, {"built": f"embedded:{spec.name}"})
