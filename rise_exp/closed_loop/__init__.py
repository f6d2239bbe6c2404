"""The closed loop: select data with a valuation, continue pretraining on it, evaluate downstream.

Modules: :mod:`~rise_exp.closed_loop.selectors` (rankings, bounds, budgets),
:mod:`~rise_exp.closed_loop.packing` (fixed-length token blocks), :mod:`~rise_exp.closed_loop.training`
(``Trainer.fit`` on one fresh model copy), :mod:`~rise_exp.closed_loop.evaluation` (held-out perplexity,
lm-eval-harness) and :mod:`~rise_exp.closed_loop.report` (tables, CSV, plot). The stage that wires them
together is :func:`rise_exp.stages.closed_loop.run_closed_loop`.
"""

from rise_exp.closed_loop.evaluation import heldout_perplexities, lm_eval_scores, lm_eval_status, perplexity
from rise_exp.closed_loop.packing import num_blocks, pack_blocks, text_tokens
from rise_exp.closed_loop.selectors import BUILTIN_SELECTORS, Selection, method_config, select
from rise_exp.closed_loop.training import TokenCounter, TrainStats, continued_pretraining

__all__ = [
    "BUILTIN_SELECTORS", "Selection", "TokenCounter", "TrainStats", "continued_pretraining", "heldout_perplexities",
    "lm_eval_scores", "lm_eval_status", "method_config", "num_blocks", "pack_blocks", "perplexity", "select",
    "text_tokens",
]
