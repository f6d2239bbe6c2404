"""Behaviour probes: generate from a model and measure a behaviour (the Howdy backdoor's sci-fi style)."""
