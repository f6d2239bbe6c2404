"""Deterministic synthetic data for every task: the offline default, small enough for a tiny model."""

from rise_exp.data.synthetic._common import SyntheticData
from rise_exp.data.synthetic.brain_rot import make_brain_rot
from rise_exp.data.synthetic.finance_medical import make_finance_medical
from rise_exp.data.synthetic.howdy import make_howdy

__all__ = ["SyntheticData", "make_brain_rot", "make_finance_medical", "make_howdy"]
