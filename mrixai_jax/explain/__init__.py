"""Prototype explanations: push with provenance, normalised influence, faithfulness."""
