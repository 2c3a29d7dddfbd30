"""Feature-cell tissue labels from the segmentation label map (prototypes.md §6.2 A).

A feature cell covers a `cell`×`cell` block of pixels (cell = the backbone's jump). Its label is
the label value covering most of the block, its purity that fraction; the cell is valid when the
purity reaches the threshold and the label is one of the tissue classes. Tissue classes are
returned as indices 0..T−1 into `tissue_classes`.
"""

from typing import Sequence

import jax.numpy as jnp
import numpy as np


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


def cell_labels(labels, tissue_classes: Sequence[int], num_cells: int, cell: int,
                purity_threshold: float):
  """Tissue index `[N, n, n]` int32 (0..T−1, arbitrary where invalid), purity `[N, n, n]` and
  validity `[N, n, n]` bool of every feature cell of `labels: [N, S, S]`."""
  tissue = jnp.asarray(tuple(tissue_classes), jnp.int32)
  frac = cell_fractions(labels, num_cells, cell, int(max(tissue_classes)) + 1)
  value = jnp.argmax(frac, axis=-1)  # first maximum, numpy semantics
  purity = jnp.max(frac, axis=-1)
  is_tissue = value[..., None] == tissue
  index = jnp.argmax(is_tissue, axis=-1).astype(jnp.int32)
  valid = jnp.any(is_tissue, axis=-1) & (purity >= purity_threshold)
  return index, purity, valid


def class_weights(tissue_index, valid, num_classes: int):
  """Inverse-frequency weights w_t = N_valid / (T·N_t) `[T]` float32 (0 for absent classes)."""
  tissue_index, valid = np.asarray(tissue_index), np.asarray(valid, bool)
  counts = np.bincount(tissue_index[valid].ravel(), minlength=num_classes).astype(np.float64)
  total = counts.sum()
  weights = np.where(counts > 0, total / (num_classes * np.maximum(counts, 1)), 0.0)
  return weights.astype(np.float32), counts.astype(np.int64)
