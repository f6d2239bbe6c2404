"""``method=rapidin`` settings (Lin et al., ACL 2024, arXiv 2405.11724: RapidGrad section and experiments)."""

from __future__ import annotations

from dataclasses import dataclass

from rise_exp.config.settings import LOSS_REDUCTIONS, Settings, setting


@dataclass(frozen=True)
class RapidInConfig(Settings):
    """Layer-normalised per-example gradients compressed by RapidGrad; influence = inner product."""

    GROUP = "method"
    name: str = setting("rapidin", "method name")
    k: int = setting(65536, "RapidGrad output dimension K (paper: 2^16)", gt=0)
    shuffle_lambda: int = setting(20, "number of structured shuffles lambda (paper: 20)", ge=0)
    lora: bool = setting(False, "gradients of the LoRA adapter only (needs a PEFT LoRA model); false: all parameters")
    loss_reduction: str = setting(
        "mean", "per-example loss = mean (or sum) of target-token NLL", choices=LOSS_REDUCTIONS
    )
    dtype: str = setting(
        "float32",
        "storage dtype of the compressed vectors (float16 as in the official code)",
        choices=("float32", "float16"),
    )
    compress_batch: int = setting(16, "rows whose flat gradients are compressed together (memory: rows x P)", gt=0)
    seed: int | None = setting(None, "RapidGrad permutations and signs; null = the global seed")
    ensemble: int = setting(
        1,
        "independent RapidGrad compressions of each gradient (member e: seed + 1000 e), stored side by side; "
        "scores are the members' mean, and stage.members=true scores each alone (E seeds, one gradient pass)",
        gt=0,
    )
    block_rows: int = setting(4096, "rows per on-disk index block", gt=0)
    store_tokens: bool | None = setting(
        None, "store token ids and masks per row (explain from the index alone); null = on for pools under 100k rows"
    )
    reuse: bool = setting(True, "reuse or resume an index of the same build in dir; false: rebuild it from scratch")
    dir: str | None = setting(None, "index directory (default: <run dir>/method/rapidin_index)")
