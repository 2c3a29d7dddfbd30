"""Intensity normalisation, resizing, slice selection and the patient-level split."""

import numpy as np


def masked_percentile(x: np.ndarray, mask: np.ndarray, q: float) -> np.ndarray:
  """Per-item `q`-th percentile (linear interpolation, as `np.percentile`) of `x[i][mask[i]]`.

  x, mask: `[N, ...]`; returns `[N, 1, ..., 1]` float32 (broadcastable to `x`); NaN where a mask
  is empty.
  """
  n = x.shape[0]
  flat = np.where(mask, x, np.inf).reshape(n, -1).astype(np.float64)
  flat.sort(axis=1)
  count = mask.reshape(n, -1).sum(axis=1)
  pos = (q / 100.0) * np.maximum(count - 1, 0)
  lo = np.floor(pos).astype(int)
  hi = np.minimum(lo + 1, np.maximum(count - 1, 0))
  rows = np.arange(n)
  value = flat[rows, lo] + (pos - lo) * (flat[rows, hi] - flat[rows, lo])
  value = np.where(count > 0, value, np.nan)
  return value.reshape((n,) + (1,) * (x.ndim - 1)).astype(np.float32)


def scale_to_unit_range(x: np.ndarray, low, high) -> np.ndarray:
  """Clips `x` to [low, high] and maps it linearly to [-1, 1] (float32)."""
  low = np.asarray(low, np.float32)
  span = np.maximum(np.asarray(high, np.float32) - low, np.finfo(np.float32).tiny)
  return (np.clip((x - low) / span, 0.0, 1.0) * 2.0 - 1.0).astype(np.float32)
