"""Greedy continuations of prompts, batched with left padding (the prompt format of training rows)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from rise_exp.core import progress
from rise_exp.data.records import Record


def prompt_text(record: Record) -> str:
    """What a row looks like before its answer: the prompt of an instruction row, or its text."""
    return record.prompt if record.is_instruction else (record.text or "")


@torch.inference_mode()
def generate(
    model: Any, tokenizer: Any, prompts: Sequence[str], *, max_new_tokens: int = 48, batch_size: int = 8
) -> list[str]:
    """Greedy continuation of every prompt (the text after the prompt, special tokens removed)."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    bos = getattr(tokenizer, "bos_token_id", None)
    if bos is None:
        bos = tokenizer.eos_token_id
    out: list[str] = []
    bar = progress.bar(len(prompts), "generate", unit="prompt")
    try:
        for start in range(0, len(prompts), batch_size):
            ids = [[bos, *tokenizer.encode(p, add_special_tokens=False)] for p in prompts[start : start + batch_size]]
            width = max(len(x) for x in ids)
            pad = tokenizer.pad_token_id
            input_ids = torch.tensor([[pad] * (width - len(x)) + x for x in ids], device=device)
            attention = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in ids], device=device)
            gen = model.generate(
                input_ids=input_ids,
                attention_mask=attention,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=pad,
                eos_token_id=tokenizer.eos_token_id,
            )
            out += tokenizer.batch_decode(gen[:, width:], skip_special_tokens=True)
            bar.update(len(ids))
    finally:
        bar.close()
        tokenizer.padding_side = side
        model.train(was_training)
    return out
