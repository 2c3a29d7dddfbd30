"""Dice similarity coefficient on boolean or label masks.

DSC(A, B) = 2|A ∩ B| / (|A| + |B|) per image (and per class). Empty-mask convention (as MONAI
with `ignore_empty=False` and medpy >= 0.5): both masks empty -> 1.0 (perfect agreement on
absence); exactly one empty -> 0.0.
"""

from typing import Sequence

import numpy as np


def _check(a, b) -> tuple:
  a, b = np.asarray(a), np.asarray(b)
  if a.shape != b.shape or a.ndim != 3:
    raise ValueError(f"dice expects two [B, H, W] masks of equal shape, got {a.shape}, {b.shape}")
  return a, b


def _binary_dice(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  inter = np.sum(a & b, axis=(1, 2), dtype=np.int64)
  total = np.sum(a, axis=(1, 2), dtype=np.int64) + np.sum(b, axis=(1, 2), dtype=np.int64)
  return np.where(total == 0, 1.0, 2.0 * inter / np.maximum(total, 1))


def dice_per_class(a, b, classes: Sequence[int]) -> np.ndarray:
  """a, b: [B, H, W] integer label maps -> [B, K] Dice of (a == k) vs (b == k) for k in `classes`."""
  a, b = _check(a, b)
  return np.stack([_binary_dice(a == k, b == k) for k in classes], axis=-1)


def dice(a, b, classes: Sequence[int] | None = None) -> np.ndarray:
  """Per-image Dice [B] float64.

  Without `classes`: foreground Dice of (a > 0) vs (b > 0) (boolean masks as they are).
  With `classes`: mean over the classes of `dice_per_class`.
  """
  a, b = _check(a, b)
  if classes is None:
    return _binary_dice(a > 0, b > 0)
  return dice_per_class(a, b, classes).mean(axis=-1)
