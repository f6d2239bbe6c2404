"""ZO-Inf: zeroth-order influence from losses across finetuning checkpoints (Kokhlikyan et al. 2025)."""
