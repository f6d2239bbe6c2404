"""STRIDE: steering operators on random subsets, influences by Lasso (Dagli et al. 2026)."""
