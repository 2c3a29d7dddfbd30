"""Normalised influence score (NIS) of each prototype on an image (prototypes.md §5.1)."""

import jax


def normalized_influence(pooled_similarity, temperature: float = 1.0):
  """NIS_j(x) = exp(s_j/T) / Σ_k exp(s_k/T) over all P prototypes of a head.

  pooled_similarity: `[N, P]` per-prototype pooled similarity s_j of each image — ProtoPNet/EPPNet
  sim(dmin_j) (log similarity of the min distance), ProtoPool sim(dmin_j) − sim(davg_j); use
  `models.prototypes.pooled_similarity`. Returns `[N, P]`, rows summing to 1 (temperature 1 is
  the paper's definition).
  """
  return jax.nn.softmax(pooled_similarity / temperature, axis=-1)
