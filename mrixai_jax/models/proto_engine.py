"""Prototype-layer primitives shared by ProtoPNet, EPPNet and ProtoPool (prototypes.md §1).

Feature maps are NHWC `z: [N, H, W, D]` with entries in (0, 1) (add-on layers end in a sigmoid);
prototypes are `[P, h1, w1, D]` (h1 = w1 = 1 by default). Distances are squared L2 distances in
feature space, expanded as ‖z‖² − 2 z·p + ‖p‖² and clamped at 0 exactly as the original
"L2 convolution" (§1.4); flattened anchor order is (h, w) row-major.
"""

import jax
import jax.numpy as jnp

LOG_SIMILARITY_EPS = 1e-4  # ε of the log activation log((d + 1) / (d + ε)) in both originals
_HIGHEST = jax.lax.Precision.HIGHEST


def flat_prototypes(prototypes):
  """`[P, h1, w1, D]` -> `[P, D·h1·w1]` in (D, h1, w1) order, the order of `_patches`' features."""
  num = prototypes.shape[0]
  return jnp.transpose(prototypes, (0, 3, 1, 2)).reshape(num, -1)


def _patches(z, patch_hw):
  """`z: [N, H, W, D]` -> every VALID stride-1 `patch_hw` window `[N, H', W', D·h1·w1]`."""
  if tuple(patch_hw) == (1, 1):
    return z
  return jax.lax.conv_general_dilated_patches(
      z, tuple(patch_hw), (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"), precision=_HIGHEST)


@jax.jit
def l2_distances(z, prototypes):
  """Squared L2 distances `[N, H', W', P]` of every patch of `z: [N, H, W, D]` to every prototype.

  `prototypes: [P, h1, w1, D]`; H' = H − h1 + 1. The distance kernel of all heads: one jit-compiled
  function, ReLU(‖z‖² + z·(−2p) + ‖p‖²) with one matmul `[N·H'·W', F] × [F, P]` over the whole
  batch and the −2 folded into the (small) prototype matrix (exact: scaling by 2 is exact in
  binary floating point); benchmarks/proto_kernel_variants.py measures the alternatives.
  """
  patches = _patches(z, prototypes.shape[1:3])
  rows = patches.reshape(-1, patches.shape[-1])
  flat = flat_prototypes(prototypes).astype(rows.dtype)
  z2 = jnp.sum(rows * rows, axis=-1, keepdims=True)
  zp = jnp.dot(rows, -2.0 * flat.T, precision=_HIGHEST)
  p2 = jnp.sum(flat * flat, axis=-1)
  return jax.nn.relu(z2 + zp + p2).reshape(*patches.shape[:3], -1)


def distance_flops(z_shape, prototype_shape) -> float:
  """Floating-point operations of one `l2_distances` call (the matmul dominates: 2·N·H'·W'·P·F)."""
  n, h, w, _ = z_shape
  num, h1, w1, d = prototype_shape
  cells = n * (h - h1 + 1) * (w - w1 + 1)
  feat = d * h1 * w1
  return float(cells * num * (2 * feat + 3) + cells * 2 * feat + num * 2 * feat)


def log_similarity(distances, eps: float = LOG_SIMILARITY_EPS):
  """ProtoPNet/ProtoPool log activation log((d + 1) / (d + ε)), range (0, log(1/ε)]."""
  return jnp.log((distances + 1.0) / (distances + eps))


def min_pool(distances):
  """Global min-pooling of `distances: [N, H', W', P]` -> `(min [N, P], argmin [N, P])`.

  `argmin` is the flat row-major (h, w) index of the first minimum; the value is gathered at it
  so the gradient goes to that single anchor, as torch's max-pool does (prototypes.md §7.3).
  """
  n, h, w, num = distances.shape
  flat = distances.reshape(n, h * w, num)
  index = jnp.argmin(flat, axis=1)
  value = jnp.take_along_axis(flat, index[:, None, :], axis=1)[:, 0, :]
  return value, index


def avg_pool(distances):
  """Mean distance over all anchors: `[N, H', W', P]` -> `[N, P]` (ProtoPool's davg)."""
  return jnp.mean(distances, axis=(1, 2))


def max_distance(prototype_shape) -> float:
  """D_max = D·h1·w1, the largest squared distance inside the unit cube ("max_dist")."""
  _, h1, w1, d = prototype_shape
  return float(d * h1 * w1)
