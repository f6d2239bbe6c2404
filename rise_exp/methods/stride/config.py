"""``method=stride`` settings (Dagli et al. 2026, arXiv 2606.05165; released operators CausalNLP/stride-nanochat).

Paper defaults: 1000 subsets, each example in d = 10 of them, rank 16, layer about 2/3 of the depth.
Optimiser, step counts and penalties are scaled for small pools (not from the paper).
"""

from __future__ import annotations

from dataclasses import dataclass

from rise_exp.config.settings import Settings, setting


@dataclass(frozen=True)
class StrideConfig(Settings):
    """Steering operators trained on random subsets; influences recovered by Lasso."""

    GROUP = "method"
    name: str = setting("stride", "method name")
    n_subsets: int | None = setting(None, "subsets; null = min(max_subsets, N)", gt=0)
    max_subsets: int = setting(1000, "paper: K = 1000 subsets", gt=0)
    subsets_per_example: int = setting(10, "paper: d = 10", gt=0)
    rank: int = setting(16, "operator rank (paper: 16)", gt=0)
    layer: int | None = setting(None, "steered block; null = round(2/3 * layers) (paper: 8 of 12)")
    steps: int = setting(100, "joint optimisation steps over all operators", gt=0)
    operators_per_step: int = setting(32, "operators updated per step", gt=0)
    member_batch: int = setting(2, "member rows per operator per step (fidelity)", gt=0)
    nonmember_batch: int = setting(2, "non-member rows per operator per step (stability)", gt=0)
    lr: float = setting(0.01, "Adam learning rate of A and B_k", ge=0)
    stability_weight: float = setting(1.0, "weight of KL(p_base || p_k) on non-members", ge=0)
    weight_decay: float = setting(0.0, "L2 penalty on the B_k", ge=0)
    lasso_alpha_ratio: float = setting(0.01, "alpha_q = ratio * alpha_max_q", gt=0)
    lasso_max_iter: int = setting(5000, "coordinate-descent iteration cap (scikit-learn Lasso)", gt=0)
    max_tokens: int = setting(
        8192,
        "padded tokens per forward batch (operator-training micro-batches and measurements; memory ~ "
        "max_tokens x vocabulary x 4 bytes per logits tensor)",
        gt=0,
    )
    replay_prefix: bool = setting(
        True,
        "compute the frozen blocks up to the steered one once per row and replay them, so each operator "
        "pass runs only the blocks above (same scores up to float rounding); false: full passes (reference)",
    )
    seed: int | None = setting(None, "subsets and operator init; null = the global seed")
    reuse_operators: bool = setting(
        True,
        "load operators trained earlier on the same model, tokens, seed and settings from the index cache "
        "(<cache>/indexes/stride-operators); false: train them again and overwrite the stored ones",
    )

    def validate(self) -> None:
        if self.n_subsets is not None and self.n_subsets < self.subsets_per_example:
            raise self.fail(
                "n_subsets",
                f"must be null (auto) or an integer >= method.subsets_per_example "
                f"({self.subsets_per_example}), got {self.n_subsets!r}",
            )
