"""``finetune`` group: finetuning the starting model on the training pool (Lightning ``Trainer.fit``)."""

from __future__ import annotations

from dataclasses import dataclass

from rise_exp.config.settings import Settings, setting


@dataclass(frozen=True)
class FinetuneConfig(Settings):
    """AdamW with linear warm-up and cosine decay; a Hugging Face checkpoint after every epoch."""

    GROUP = "finetune"
    seed: int = setting(0, "model seed (shuffling, dropout); the global seed varies only the methods")
    epochs: int = setting(0, "epochs; 0 = use the model as loaded (zero-shot)", ge=0)
    lr: float = setting(2.0e-5, "peak learning rate", gt=0)
    weight_decay: float = setting(0.0, "AdamW weight decay", ge=0)
    warmup_ratio: float = setting(0.03, "fraction of steps of linear warm-up", ge=0, lt=1)
    min_lr_ratio: float = setting(0.1, "final learning rate as a fraction of lr (cosine decay)", ge=0, le=1)
    grad_clip: float = setting(1.0, "gradient-norm clipping (0 = off)", ge=0)
    max_tokens_per_batch: int = setting(8192, "padded tokens per optimisation step", gt=0)
    max_length: int | None = setting(None, "tokens per row; null = data.max_length", gt=0)
    mask_prompt: bool | None = setting(None, "only response tokens are targets; null = data.mask_prompt")
