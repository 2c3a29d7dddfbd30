"""Push (prototype projection) with provenance (prototypes.md §1.8, §4.6, §6.2 A).

Every prototype is replaced by its nearest training feature patch among the cells it may use (its
own tissue class); the record of where that patch came from (training image, patient, slice,
feature cell, pixel window, distance) is what the faithfulness score and the gallery use.
Batches are visited in dataset order; a later batch wins only with a strictly smaller distance
and ties inside a batch go to the first (image, h, w) in row-major order, as in the original.
"""

import jax
import jax.numpy as jnp
import numpy as np


@jax.jit
def _batch_nearest(distances, allowed):
  """Per prototype, the smallest allowed distance `[P]` and its flat (b, h, w) index `[P]`."""
  num = distances.shape[-1]
  masked = jnp.where(allowed, distances, jnp.inf)
  flat = jnp.moveaxis(masked, -1, 0).reshape(num, -1)
  index = jnp.argmin(flat, axis=1)
  return jnp.take_along_axis(flat, index[:, None], axis=1)[:, 0], index


class NearestPatchSearch:
  """Running nearest-patch search over batches visited in order.

  `update(z, distances, allowed, first_image)` with features `z: [B, H, W, D]`, distances
  `[B, H', W', P]`, allowed `[B, H', W', P]` bool and the dataset index of the batch's first image.
  Results (numpy): `distance [P]` (inf: no candidate), `image [P]` (−1: none), `cell [P, 2]`
  (h, w), `patches [P, h1, w1, D]` (zeros where none, as the original's untouched buffer).
  """

  def __init__(self, prototype_shape):
    num = prototype_shape[0]
    self.prototype_shape = tuple(prototype_shape)
    self.distance = np.full(num, np.inf)
    self.image = np.full(num, -1, np.int64)
    self.cell = np.zeros((num, 2), np.int64)
    self.patches = np.zeros(self.prototype_shape, np.float32)

  def update(self, z, distances, allowed, first_image: int) -> None:
    value, index = jax.device_get(_batch_nearest(distances, allowed))
    _, h_out, w_out, _ = distances.shape
    _, h1, w1, _ = self.prototype_shape
    z = np.asarray(z)
    for j in np.nonzero(value < self.distance)[0]:  # strict <: the earlier batch wins ties
      b, h, w = np.unravel_index(index[j], (distances.shape[0], h_out, w_out))
      self.distance[j] = value[j]
      self.image[j] = first_image + b
      self.cell[j] = (h, w)
      self.patches[j] = z[b, h:h + h1, w:w + w1, :]
