"""Feature-cell tissue labels from the segmentation label map (prototypes.md §6.2 A).

A feature cell covers a `cell`×`cell` block of pixels (cell = the backbone's jump). Tissue classes
are returned as indices 0..T−1 into `tissue_classes`; see `cell_labels` for the rule.
"""

import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np


@functools.partial(jax.jit, static_argnums=(1, 2, 3))
def cell_fractions(labels, num_cells: int, cell: int, num_values: int):
  """Per-cell label fractions `[N, n, n, num_values + 1]` of `labels: [N, S, S]` (integers).

  Values ≥ `num_values` are pooled in the last bin. Only the top-left `n·cell` pixels are used.
  """
  side = num_cells * cell
  if labels.shape[1] < side or labels.shape[2] < side:
    raise ValueError(f"label maps {labels.shape[1:]} are smaller than {num_cells} cells of {cell} px")
  lab = jnp.asarray(labels)[:, :side, :side].astype(jnp.int32)
  lab = jnp.minimum(lab, num_values)
  onehot = (lab[..., None] == jnp.arange(num_values + 1)).astype(jnp.float32)
  n = lab.shape[0]
  blocks = onehot.reshape(n, num_cells, cell, num_cells, cell, num_values + 1)
  return blocks.mean(axis=(2, 4))


def cell_labels(labels, tissue_classes: Sequence[int], num_cells: int, cell: int, purity_threshold):
  """Tissue index `[N, n, n]` int32 (0..T−1, arbitrary where invalid), purity `[N, n, n]` and
  validity `[N, n, n]` bool of every feature cell of `labels: [N, S, S]`.

  `purity_threshold`: one threshold, or one per tissue class (thin structures such as vessels never
  fill a whole cell). A cell qualifies for tissue t when t covers ≥ thr_t of it; it is valid when
  it qualifies for some tissue and takes, among those, the one with the lowest threshold (the
  thinner structure), then the larger fraction, then the first. With one threshold ≥ 0.5 this is
  prototypes.md's rule (label = majority value, valid when it is a tissue covering ≥ threshold).
  `purity` is the chosen tissue's fraction.
  """
  tissue = jnp.asarray(tuple(tissue_classes), jnp.int32)
  thresholds = jnp.broadcast_to(jnp.asarray(purity_threshold, jnp.float32), tissue.shape)
  frac = cell_fractions(labels, num_cells, cell, int(max(tissue_classes)) + 1)[..., tissue]
  qualifies = frac >= thresholds
  lowest = jnp.min(jnp.where(qualifies, thresholds, jnp.inf), axis=-1, keepdims=True)
  candidates = qualifies & (thresholds == lowest)
  index = jnp.argmax(jnp.where(candidates, frac, -1.0), axis=-1).astype(jnp.int32)
  purity = jnp.take_along_axis(frac, index[..., None], axis=-1)[..., 0]
  return index, purity, jnp.any(qualifies, axis=-1)


def background_cells(labels, tissue_classes: Sequence[int], num_cells: int, cell: int, purity_threshold: float):
  """`[N, n, n]` bool: cells where non-tissue label values cover ≥ `purity_threshold` of the cell."""
  frac = cell_fractions(labels, num_cells, cell, int(max(tissue_classes)) + 1)
  tissue = jnp.sum(frac[..., jnp.asarray(tuple(tissue_classes))], axis=-1)
  return 1.0 - tissue >= purity_threshold


def class_weights(tissue_index, valid, num_classes: int):
  """Inverse-frequency weights w_t = N_valid / (T·N_t) `[T]` float32 (0 for absent classes)."""
  tissue_index, valid = np.asarray(tissue_index), np.asarray(valid, bool)
  counts = np.bincount(tissue_index[valid].ravel(), minlength=num_classes).astype(np.float64)
  total = counts.sum()
  weights = np.where(counts > 0, total / (num_classes * np.maximum(counts, 1)), 0.0)
  return weights.astype(np.float32), counts.astype(np.int64)
