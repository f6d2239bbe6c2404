"""``method=ekfac`` settings: EK-FAC influence functions through kronfluence (Grosse et al., "Studying Large
Language Model Generalization with Influence Functions", arXiv 2308.03296; the ``kronfluence`` library)."""

from __future__ import annotations

from dataclasses import dataclass

from rise_exp.config.settings import Settings, setting

STRATEGIES = ("ekfac", "kfac", "diagonal")
REDUCTIONS = ("mean", "sum")
DTYPES = ("float32", "float64")


@dataclass(frozen=True)
class EKFACConfig(Settings):
    """Influence ``g_q^T (F + lambda I)^-1 g_x`` with a Kronecker-factored (eigenvalue-corrected) Fisher F."""

    GROUP = "method"
    name: str = setting("ekfac", "method name")
    strategy: str = setting(
        "ekfac", "Fisher approximation: ekfac (eigenvalue-corrected), kfac or diagonal", choices=STRATEGIES
    )
    damping: float | None = setting(
        None, "damping lambda added to the Fisher; null: kronfluence's 0.1 x mean eigenvalue per module", gt=0
    )
    modules: str = setting(
        "", "regular expression over module names choosing the tracked nn.Linear modules; empty: every one"
    )
    empirical_fisher: bool = setting(
        False, "Fisher from the observed tokens (empirical); false: tokens sampled from the model (true Fisher)"
    )
    loss_reduction: str = setting("mean", "per-example loss = mean (or sum) of target-token NLL", choices=REDUCTIONS)
    query_low_rank: int | None = setting(
        None, "rank of the low-rank approximation of the preconditioned query gradients; null: full rank", gt=0
    )
    relative: bool = setting(
        False,
        "relative influence (RelatIF's l-relative form): each training row's influence divided by the square root "
        "of its self-influence g_x^T (F + lambda I)^-1 g_x, so rows with large gradients stop dominating",
    )
    factor_batch: int = setting(8, "rows per batch when fitting the factors", gt=0)
    train_batch: int = setting(16, "training rows per batch when scoring", gt=0)
    query_batch: int = setting(
        64,
        "queries per batch when scoring; every batch takes one gradient pass over the training pool, so one "
        "batch for the runner's 64-query chunks",
        gt=0,
    )
    dtype: str = setting("float32", "dtype of the covariances, gradients and scores", choices=DTYPES)
    seed: int | None = setting(None, "seed of the sampled Fisher labels; null = the global seed")
    reuse: bool = setting(True, "reuse the cached factors of the same model, tokens and settings; false: refit")
