"""Training library: the masked token loss, the causal-LM LightningModule and the cached finetune.

Submodules are imported explicitly (``from rise_exp.training.finetune import run_finetune``) so that
importing this package stays cheap.
"""
