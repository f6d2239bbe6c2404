"""Counterfactual ground truth: retrain without rows and measure what changes.

Label metrics ask whether a method finds rows a human tagged; these ask whether the rows it names cause
the behaviour. :mod:`~rise_exp.counterfactual.subsets` draws the kept parts of the pool,
:mod:`~rise_exp.counterfactual.measure` measures a model on the queries,
:mod:`~rise_exp.counterfactual.retrain` retrains the starting model on a kept part (cached on disk by
everything the result depends on, so every method is judged against the same retrained models),
:mod:`~rise_exp.counterfactual.lds` computes the linear datamodeling score and
:mod:`~rise_exp.counterfactual.removal` plans and summarises top-k removals.

Sign convention: a score is "higher = the row helps the query" (for ``loss``: including it lowers the
query's loss; for ``backdoor``: including it raises the backdoor; for ``style_loss``: including it lowers the
loss of backdoor-style answers). :data:`HELPED` gives, per measure,
the sign that turns a measured value into "how much the kept rows helped".
"""

from rise_exp.counterfactual.lds import HELPED

__all__ = ["HELPED"]
