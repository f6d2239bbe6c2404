"""Models: loading any Hugging Face causal LM, the embedded tiny models, GGUF conversion, a run's starting
weights, the identity of weights, the catalogue's architecture facts and where a model computes.

Submodules are imported explicitly (``from rise_exp.models.weights import load_base_model``).
"""
