"""RapidIn: layer-normalised per-example gradients, RapidGrad compression (Lin et al., ACL 2024)."""
