"""Prototype explanations: push with provenance, normalised influence (NIS), faithfulness F.

Public API (ARCHITECTURE.md): `normalized_influence(pooled_similarity [N, P]) -> NIS [N, P]` and
`faithfulness(nis [N, P], rho [N, P]) -> F [N]`; ρ comes from `scoring.prototype_correlations`.
"""

from mrixai_jax.explain.influence import normalized_influence
from mrixai_jax.explain.scoring import faithfulness

__all__ = ["faithfulness", "normalized_influence"]
