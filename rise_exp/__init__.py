"""rise-exp: scalable training-data attribution and valuation for language models."""

__version__ = "0.1.0"
