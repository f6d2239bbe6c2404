"""``method=zo_inf`` settings (Kokhlikyan et al., arXiv 2510.11832; defaults of the released zinf_train_test)."""

from __future__ import annotations

from dataclasses import dataclass

from rise_exp.config.settings import LOSS_REDUCTIONS, Settings, setting

PARAM_SCOPES = ("lm_head", "all")


@dataclass(frozen=True)
class ZOInfConfig(Settings):
    """Zeroth-order train-test influence over the finetuning checkpoints."""

    GROUP = "method"
    name: str = setting("zo_inf", "method name")
    min_checkpoints: int = setting(2, "at least one neighbouring pair (finetune.epochs + 1 checkpoints exist)", ge=2)
    neighbors: int = setting(4, "neighbourhood size k: k // 2 checkpoints on each side", ge=2)
    center_losses: bool = setting(True, "centre each checkpoint's losses over the split")
    weight_by_correlation: bool = setting(True, "multiply by the Spearman correlation of loss trajectories")
    displacement_norm_power: float = setting(2.0, "p in ||theta_e - theta_j||^p; 4 reproduces the released code", gt=0)
    params: str = setting(
        "lm_head", "lm_head (output embedding, as in the paper's LLM runs) or all", choices=PARAM_SCOPES
    )
    loss_reduction: str = setting(
        "mean", "per-example loss = mean (or sum) of target-token NLL", choices=LOSS_REDUCTIONS
    )
    max_tokens: int = setting(8192, "padded tokens per loss batch", gt=0)
