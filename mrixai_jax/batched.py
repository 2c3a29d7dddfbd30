"""One host-side pass of a function over arrays in batches, with progress lines."""

import jax
import numpy as np

from mrixai_jax import progress


def host_map(fn, arrays: tuple, batch_size: int, label: str):
  """`fn(*batch)` over `arrays` (each `[N, ...]`, numpy or jax) in batches of `batch_size` rows (the
  last shorter); `fn` returns a pytree of `[b, ...]` arrays. Returns the same pytree of numpy
  `[N, ...]` arrays. Passes longer than `progress.LOG_EVERY_S` log `label` progress lines."""
  parts = [jax.device_get(fn(*(a[rows] for a in arrays)))
           for rows in progress.batch_slices(len(arrays[0]), batch_size, label, final_line=False)]
  return jax.tree.map(lambda *rows: np.concatenate(rows), *parts)
