"""``finetune`` group: finetuning the starting model on the training pool (Lightning ``Trainer.fit``)."""

from __future__ import annotations

from dataclasses import dataclass

from rise_exp.config.settings import Settings, setting


@dataclass(frozen=True)
class FinetuneConfig(Settings):
    """AdamW with linear warm-up and cosine decay; a Hugging Face checkpoint before training and after every epoch.

    Full finetuning, or LoRA (``lora: true``, the ``lora`` extra): then the checkpoints are adapters on
    the starting weights and methods see the adapted model.
    """

    GROUP = "finetune"
    seed: int = setting(0, "model seed (shuffling, dropout, the loss sample); the global seed varies only methods")
    epochs: int = setting(0, "epochs; 0 = use the model as loaded (zero-shot)", ge=0)
    max_steps: int | None = setting(None, "stop after this many optimiser steps (null = epochs decide)", gt=0)
    lr: float = setting(2.0e-5, "peak learning rate", gt=0)
    weight_decay: float = setting(0.0, "AdamW weight decay", ge=0)
    warmup_ratio: float = setting(0.03, "fraction of steps of linear warm-up", ge=0, lt=1)
    min_lr_ratio: float = setting(0.1, "final learning rate as a fraction of lr (cosine decay)", ge=0, le=1)
    grad_clip: float = setting(1.0, "gradient-norm clipping (0 = off)", ge=0)
    max_tokens_per_batch: int = setting(8192, "padded tokens per forward/backward micro-batch", gt=0)
    grad_accum: int = setting(1, "micro-batches accumulated per optimiser step", gt=0)
    eval_rows: int | None = setting(
        512, "rows (a seeded sample) the loss before/after is measured on; null = all", gt=0
    )
    max_length: int | None = setting(None, "tokens per row; null = data.max_length", gt=0)
    mask_prompt: bool | None = setting(None, "only response tokens are targets; null = data.mask_prompt")
    lora: bool = setting(False, "train a LoRA adapter instead of every weight (needs peft: the lora extra)")
    lora_r: int = setting(16, "LoRA rank", gt=0)
    lora_alpha: float = setting(32.0, "LoRA scaling alpha", gt=0)
    lora_dropout: float = setting(0.0, "LoRA dropout", ge=0, lt=1)
    lora_targets: str = setting("all-linear", "modules that get adapters: all-linear or comma-separated names")
