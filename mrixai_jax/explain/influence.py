"""Normalised influence score (NIS) of each prototype on an image (prototypes.md §5.1)."""

import jax
import jax.numpy as jnp


def normalized_influence(pooled_similarity, temperature: float = 1.0, active=None):
  """NIS_j(x) = exp(s_j/T) / Σ_k exp(s_k/T) over the P prototypes of a head.

  pooled_similarity: `[N, P]` per-prototype pooled similarity s_j of each image — ProtoPNet/EPPNet
  sim(dmin_j) (log similarity of the min distance), ProtoPool sim(dmin_j) − sim(davg_j); use
  `models.prototypes.pooled_similarity`. Returns `[N, P]`, rows summing to 1 (temperature 1 is
  the paper's definition). active: optional `[P]` bool; inactive prototypes get NIS 0 and the
  softmax runs over the others (e.g. `models.prototypes.active_prototypes`: ProtoPool prototypes
  in no slot are zero vectors without a source and take part in no logit).
  """
  logits = pooled_similarity / temperature
  if active is None:
    return jax.nn.softmax(logits, axis=-1)
  return jax.nn.softmax(jnp.where(active, logits, -jnp.inf), axis=-1, where=jnp.asarray(active))
