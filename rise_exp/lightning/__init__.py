"""Lightning pieces of rise-exp: LightningModules for the stages and the index prediction writer.

Submodules are imported explicitly (e.g. ``from rise_exp.lightning.index_writer import
IndexPredictionWriter``) so that importing this package stays cheap.
"""
