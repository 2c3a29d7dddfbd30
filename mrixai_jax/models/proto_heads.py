"""Loss terms and class structure of the three prototype heads (prototypes.md §2–§4, §6.2 A).

Every term works on a flat set of M "samples" with per-prototype distances `dist: [M, P]`: at
image level a sample is an image and `dist` its min-pooled distances (the originals); in the
tissue-cell adaptation a sample is a feature cell and `dist` the distances at that cell. Labels are
class indices `[M]`; `valid: [M]` (0/1) times the class weight of the label weights each sample
(all ones at image level). All means are guarded: an empty set gives 0, never NaN.
"""

import jax
import jax.numpy as jnp

from mrixai_jax.models.proto_engine import log_similarity


# ---------------------------------------------------------------- shared

def class_identity(num_classes: int, per_class: int):
  """One-hot `[P, C]` (default float dtype): prototype (or slot) j belongs to class j // per_class."""
  owner = jnp.arange(num_classes * per_class) // per_class
  return jax.nn.one_hot(owner, num_classes)


def last_layer_init(identity, incorrect_strength: float):
  """Last layer `[C, P]`: 1 on the class's own prototypes, `incorrect_strength` elsewhere
  (ProtoPNet −0.5, ProtoPool 0)."""
  own = identity.T
  return own + incorrect_strength * (1.0 - own)


def masked_min_trick(dist, mask, max_dist: float):
  """D_max − max_j((D_max − dist_j)·mask_j) per sample `[M]`: the original code's masked minimum
  (= min over the mask while dist ≤ D_max; D_max with no gradient for an empty mask)."""
  return max_dist - jnp.max((max_dist - dist) * mask, axis=-1)


def weighted_mean(values, weight):
  """Σ w·v / Σ w, 0 when the weights sum to 0."""
  total = jnp.sum(weight)
  return jnp.sum(values * weight) / jnp.where(total > 0, total, 1.0)


def cross_entropy(logits, labels, weight):
  """Weighted mean CE `Σ w·CE / Σ w` of `logits: [M, C]` against `labels: [M]` (torch semantics)."""
  logp = jax.nn.log_softmax(logits, axis=-1)
  nll = -jnp.take_along_axis(logp, labels[:, None], axis=-1)[:, 0]
  return weighted_mean(nll, weight)


def wrong_class_l1(last_layer, identity):
  """‖W ⊙ (1 − identityᵀ)‖₁: L1 of the connections to wrong-class prototypes/slots."""
  return jnp.sum(jnp.abs(last_layer * (1.0 - identity.T)))


# ---------------------------------------------------------------- ProtoPNet (and EPPNet's shared terms)

def ppnet_logits(dist, last_layer):
  """Logits `[M, C]` = sim(dist) · Wᵀ for `dist: [M, P]`, `last_layer: [C, P]`."""
  return log_similarity(dist) @ last_layer.T


def ppnet_terms(dist, labels, valid, class_weight, identity, last_layer, max_dist: float) -> dict:
  """ProtoPNet loss terms (§2.2) on samples `dist: [M, P]`, `labels: [M]`, `valid: [M]` (0/1).

  `class_weight: [C]` weights every per-sample term (inverse frequency in the tissue adaptation,
  i.e. class-balanced cells; prototypes.md weights only the CE, but then the rare tissues' prototypes
  barely receive cluster gradient).
  Returns scalars `cross_entropy, cluster, separation, avg_separation, l1`.
  """
  weight = valid.astype(dist.dtype) * class_weight[labels]
  correct = identity[:, labels].T  # [M, P]
  wrong = 1.0 - correct
  num_wrong = jnp.sum(wrong, axis=-1)
  avg_sep = jnp.sum(dist * wrong, axis=-1) / jnp.where(num_wrong > 0, num_wrong, 1.0)
  return {
      "cross_entropy": cross_entropy(ppnet_logits(dist, last_layer), labels, weight),
      "cluster": weighted_mean(masked_min_trick(dist, correct, max_dist), weight),
      "separation": weighted_mean(masked_min_trick(dist, wrong, max_dist), weight),
      "avg_separation": weighted_mean(avg_sep, weight * (num_wrong > 0)),
      "l1": wrong_class_l1(last_layer, identity),
  }


# ---------------------------------------------------------------- EPPNet (reconstruction, §3.2)

def region_mean_cluster(distances, region_class, valid, identity):
  """EPPNet mean-cluster (MC-A, a reconstruction): every prototype of a class is pulled to its
  nearest patch of that class, averaged over all prototypes of the class.

  distances: `[N, H, W, P]`; region_class: `[N, H, W]` class of each cell; valid: `[N, H, W]`.
  For image i and prototype j of class c present in i, m_ij = min of d_j over valid cells of class
  c; the result is the mean of m_ij over those (i, j). At image level (every cell valid and of the
  image's label) this is mean_i (1/m) Σ_{j∈M_i} dmin_ij.
  """
  n, h, w, p = distances.shape
  owner = jnp.argmax(identity, axis=-1)  # [P]
  region = valid[..., None] & (region_class[..., None] == owner)  # [N, H, W, P]
  region = region.reshape(n, h * w, p)
  flat = distances.reshape(n, h * w, p)
  masked = jnp.where(region, flat, jnp.inf)
  index = jnp.argmin(masked, axis=1)
  nearest = jnp.take_along_axis(flat, index[:, None, :], axis=1)[:, 0, :]  # [N, P]
  present = jnp.any(region, axis=1).astype(distances.dtype)
  return weighted_mean(nearest, present)


def pairwise_sq_distances(prototypes):
  """‖p_i − p_j‖² `[P, P]` over flattened prototypes `[P, ...]` (direct differences)."""
  flat = prototypes.reshape(prototypes.shape[0], -1)
  diff = flat[:, None, :] - flat[None, :, :]
  return jnp.sum(diff * diff, axis=-1)


def diversity_hinge(prototypes, identity, delta: float):
  """Mean over same-class pairs i < j of ReLU(δ − ‖p_i − p_j‖²) (0 when no class has two)."""
  num = prototypes.shape[0]
  same = (identity @ identity.T) > 0
  upper = jnp.triu(jnp.ones((num, num), bool), k=1)
  pairs = (same & upper).astype(prototypes.dtype)
  hinge = jax.nn.relu(delta - pairwise_sq_distances(prototypes))
  return weighted_mean(hinge, pairs)


# ---------------------------------------------------------------- ProtoPool (§4)

def gumbel_scale(epoch, gumbel_time: float, start: float = 1.3, end: float = 1e3):
  """The original logit multiplier s(e) = start·sqrt(α·e), α = (end/start)²/T_g, for e < T_g,
  else `end` (= end·sqrt(e/T_g)); `epoch` may be fractional (steps / steps per epoch)."""
  alpha = (end / start) ** 2 / gumbel_time
  epoch = jnp.asarray(epoch, jnp.result_type(float))
  return jnp.where(epoch < gumbel_time, start * jnp.sqrt(alpha * jnp.maximum(epoch, 0.0)), end)


def slot_assignment(presence, scale, gumbel_noise, tau: float):
  """Soft slot assignment q `[C, P, K]`, softmax over the pool axis P (§4.2).

  presence: raw logits Q `[C, P, K]`; scale s: for s > 0, q = softmax((s·Q + G)/τ) with the
  injected standard-Gumbel draw `gumbel_noise: [C, P, K]` (one draw per step, shared by the
  batch); for s = 0, q = softmax(Q) (no noise).
  """
  noisy = jax.nn.softmax((scale * presence + gumbel_noise) / tau, axis=1)
  plain = jax.nn.softmax(presence, axis=1)
  return jnp.where(scale > 0, noisy, plain)


def focal_similarity(dist, avg_dist, q):
  """The code's focal similarity x `[M, C, K]` = sim(Σ_j q_cjk·dist_j) − sim(Σ_j q_cjk·avg_j).

  dist: `[M, P]` (min-pooled per image, or per cell); avg_dist: `[M, P]` (the image's mean
  distance). Distances are mixed before the log activation, as in the original forward.
  """
  mixed_min = jnp.einsum("mp,cpk->mck", dist, q)
  mixed_avg = jnp.einsum("mp,cpk->mck", avg_dist, q)
  return log_similarity(mixed_min) - log_similarity(mixed_avg)


def protopool_logits(focal, last_layer):
  """Logits `[M, C]` from focal similarities `[M, C, K]` and last layer `[C, C·K]` (slot c·K + k)."""
  return focal.reshape(focal.shape[0], -1) @ last_layer.T


def top_mass_mask(mass, k: int):
  """0/1 mask `[M, P]` of the k largest entries of `mass: [M, P]` (ties: lowest index first)."""
  order = jnp.argsort(-mass, axis=-1, stable=True)[:, :k]
  rows = jnp.arange(mass.shape[0])[:, None]
  return jnp.zeros_like(mass).at[rows, order].set(1.0)


def orthogonality_loss(presence, eps: float = 1e-8):
  """Σ_{c,k,l} cos(Q[c,:,k], Q[c,:,l]) / (K·C) − 1 on the raw logits Q `[C, P, K]`."""
  num_classes, _, slots = presence.shape
  norm = jnp.maximum(jnp.linalg.norm(presence, axis=1), eps)  # [C, K]
  cos = jnp.einsum("cpk,cpl->ckl", presence, presence) / (norm[:, :, None] * norm[:, None, :])
  return jnp.sum(cos) / (slots * num_classes) - 1.0


def protopool_terms(dist, avg_dist, labels, valid, class_weight, q, presence, last_layer,
                    slot_identity, max_dist: float) -> dict:
  """ProtoPool loss terms (§4.4) on samples `dist, avg_dist: [M, P]`, `labels: [M]`, `valid: [M]`.

  `class_weight: [C]` weights every per-sample term, as in `ppnet_terms`.
  Cluster/separation masks come from the detached assignment mass of the sample's class: the K
  most-assigned prototypes (cluster) and the P − K least-assigned ones (separation).
  Returns scalars `cross_entropy, cluster, separation, orthogonality, l1`.
  """
  weight = valid.astype(dist.dtype) * class_weight[labels]
  slots, pool = q.shape[2], q.shape[1]
  mass = jax.lax.stop_gradient(jnp.sum(q[labels], axis=-1))  # [M, P]
  logits = protopool_logits(focal_similarity(dist, avg_dist, q), last_layer)
  return {
      "cross_entropy": cross_entropy(logits, labels, weight),
      "cluster": weighted_mean(masked_min_trick(dist, top_mass_mask(mass, slots), max_dist), weight),
      "separation": weighted_mean(
          masked_min_trick(dist, top_mass_mask(slots - mass, pool - slots), max_dist), weight),
      "orthogonality": orthogonality_loss(presence),
      "l1": wrong_class_l1(last_layer, slot_identity),
  }
