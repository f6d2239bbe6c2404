"""``method=trackstar`` settings: TrackStar (Chang et al., "Scalable Influence and Fact Tracing for Large
Language Model Pretraining", arXiv 2410.17413) through the ``bergson`` library."""

from __future__ import annotations

from dataclasses import dataclass

from rise_exp.config.settings import Settings, setting

NORMALIZERS = ("pool", "none")
PRECONDITIONERS = ("none", "pool")
REDUCTIONS = ("mean", "sum")


@dataclass(frozen=True)
class TrackStarConfig(Settings):
    """Cosine of second-moment-normalised, randomly projected per-module loss gradients."""

    GROUP = "method"
    name: str = setting("trackstar", "method name")
    projection_dim: int = setting(16, "k: each module's gradient G becomes the k x k matrix L G R^T (bergson)", gt=0)
    normalizer: str = setting(
        "pool",
        "divide gradients elementwise by sqrt(second moment) + 1e-8: pool (mean squared per-row gradient "
        "over the training pool, standing in for Adam's, which finetunes do not keep) or none",
        choices=NORMALIZERS,
    )
    preconditioner: str = setting(
        "none",
        "TrackStar's R^-1/2: none, or pool (each module's projected gradients times R^-1/2, R their "
        "autocorrelation over the training pool, on training rows and queries alike)",
        choices=PRECONDITIONERS,
    )
    preconditioner_damping: float = setting(
        0.1, "damping of R: its eigenvalues plus this times their mean (bergson's damped inverse)", gt=0
    )
    loss_reduction: str = setting("mean", "per-example loss = mean (or sum) of target-token NLL", choices=REDUCTIONS)
    modules: str = setting(
        "",
        "regular expression over the trunk's nn.Linear module names (relative to model.base_model) choosing the "
        "tracked modules; empty: every one; lora_: a PEFT adapter's LoRA layers only",
    )
    batch_rows: int = setting(8, "rows per gradient batch", gt=0)
    seed: int | None = setting(None, "seed of the random projections; null = the global seed")
    reuse: bool = setting(True, "reuse the cached training gradients of the same model, tokens and settings")
