"""Dice edge cases and the classical breast segmenter on phantom slices."""

import numpy as np
import pytest

from mrixai_jax.data import phantom
from mrixai_jax.metrics import overlap as dice_mod
from mrixai_jax.metrics import segmenter


def _reference_dice(a, b):
  """Textbook 2TP / (2TP + FP + FN) on one pair of boolean masks (both empty -> 1)."""
  tp, fp, fn = np.sum(a & b), np.sum(~a & b), np.sum(a & ~b)
  return 1.0 if tp + fp + fn == 0 else 2 * tp / (2 * tp + fp + fn)


def test_edge_cases():
  empty = np.zeros((1, 8, 8), bool)
  full = np.ones((1, 8, 8), bool)
  np.testing.assert_array_equal(dice_mod.dice(empty, empty), [1.0])
  np.testing.assert_array_equal(dice_mod.dice(empty, full), [0.0])
  np.testing.assert_array_equal(dice_mod.dice(full, empty), [0.0])
  np.testing.assert_array_equal(dice_mod.dice(full, full), [1.0])


def test_random_masks_match_reference_and_are_symmetric():
  rng = np.random.default_rng(0)
  a = rng.uniform(size=(5, 16, 16)) < 0.3
  b = rng.uniform(size=(5, 16, 16)) < 0.5
  ours = dice_mod.dice(a, b)
  np.testing.assert_allclose(ours, [_reference_dice(x, y) for x, y in zip(a, b)], rtol=1e-12)
  np.testing.assert_allclose(ours, dice_mod.dice(b, a), rtol=1e-12)


def test_label_maps_per_class_and_mean():
  rng = np.random.default_rng(1)
  a = rng.integers(0, 4, (3, 12, 12)).astype(np.uint8)
  b = np.where(rng.uniform(size=a.shape) < 0.2, rng.integers(0, 4, a.shape), a).astype(np.uint8)
  b[0][b[0] == 3] = 1
  a[0][a[0] == 3] = 2  # class 3 absent from both masks of image 0 -> 1.0 by convention
  per = dice_mod.dice_per_class(a, b, classes=(1, 2, 3))
  ref = [[_reference_dice(x == k, y == k) for k in (1, 2, 3)] for x, y in zip(a, b)]
  np.testing.assert_allclose(per, ref, rtol=1e-12)
  assert per[0, 2] == 1.0
  np.testing.assert_allclose(dice_mod.dice(a, b, classes=(1, 2, 3)), np.mean(ref, axis=1))
  np.testing.assert_allclose(dice_mod.dice(a, b), [_reference_dice(x > 0, y > 0) for x, y in zip(a, b)])


def test_shape_mismatch_raises():
  with pytest.raises(ValueError, match="equal shape"):
    dice_mod.dice(np.zeros((1, 4, 4)), np.zeros((1, 4, 5)))


@pytest.mark.parametrize("size", [64, 128])
def test_segmenter_reaches_dice_095_on_phantom(size):
  # Three phantom seeds pooled, none of them used to choose the defaults (1, 7, 11).
  images, labels = [], []
  for seed in (0, 2, 3):
    data = phantom.generate(20, size, seed)
    images.append(data["image"])
    labels.append(data["labels"])
  scores = dice_mod.dice(segmenter.segment_batch(np.concatenate(images)), np.concatenate(labels) > 0)
  assert scores.mean() >= 0.95, scores
  assert scores.min() >= 0.85, scores


def test_segmenter_degenerate_inputs():
  assert not segmenter.segment_breast(np.zeros((32, 32))).any()
  assert not segmenter.segment_breast(np.full((32, 32, 1), -1.0)).any()
  with pytest.raises(ValueError, match="one \\[H, W\\]"):
    segmenter.segment_breast(np.zeros((2, 32, 32)))
