"""The closed loop: select data with a valuation, continue pretraining on it, evaluate downstream.

Modules: :mod:`~rise_exp.closed_loop.selectors` (rankings, bounds, budgets),
:mod:`~rise_exp.closed_loop.packing` (fixed-length token blocks), :mod:`~rise_exp.closed_loop.training`
(``Trainer.fit`` on one fresh model copy) and :mod:`~rise_exp.closed_loop.evaluation` (held-out perplexity,
lm-eval-harness); the tables, CSV and plot are in :mod:`rise_exp.report.closed_loop`. The stage that wires
them together is :func:`rise_exp.stages.closed_loop.run`.
"""
