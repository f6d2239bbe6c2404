"""Data layer: one record schema, loaders, synthetic task generators and task builders."""

from rise_exp.data.records import Record

__all__ = ["Record"]
