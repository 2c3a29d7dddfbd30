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


SPLITS = ("train", "validation", "test")


def split_patients(patient_ids, fractions, seed: int) -> dict:
  """Assigns each distinct patient to one split: `{"train"|"validation"|"test": sorted ids}`.

  `fractions` (train, validation, test) are shares of patients; the patient order is a permutation
  drawn from `seed`. Every split with a positive fraction gets at least one patient; raises
  ValueError when there are too few patients for that.
  """
  patients = np.unique(np.asarray(patient_ids).astype(str))
  fractions = np.asarray(fractions, np.float64)
  if fractions.shape != (3,) or np.any(fractions < 0) or fractions.sum() <= 0:
    raise ValueError(f"split_fractions must be three non-negative shares, got {tuple(fractions)}")
  fractions = fractions / fractions.sum()
  counts = np.round(fractions * len(patients)).astype(int)
  counts = np.where(fractions > 0, np.maximum(counts, 1), 0)
  counts[0] = len(patients) - counts[1:].sum()
  if np.any(counts[fractions > 0] < 1):
    raise ValueError(f"{len(patients)} patients cannot fill the splits {dict(zip(SPLITS, fractions))}")
  order = np.random.default_rng(seed).permutation(len(patients))
  bounds = np.cumsum(counts)[:-1]
  return {name: np.sort(patients[part]) for name, part in zip(SPLITS, np.split(order, bounds))}
