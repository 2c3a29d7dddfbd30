"""Preprocessing: percentile clipping, [-1, 1] scaling, resizing, slice selection, patient split."""

import numpy as np
import pytest

from mrixai_jax.data import preprocess


def test_masked_percentile_matches_numpy():
  rng = np.random.default_rng(0)
  x = rng.gamma(2.0, 300.0, size=(5, 7, 9)).astype(np.float32)
  mask = rng.random((5, 7, 9)) < 0.4
  mask[3] = False
  for q in (0.5, 37.0, 99.5):
    got = preprocess.masked_percentile(x, mask, q).ravel()
    for i in range(5):
      if mask[i].any():
        np.testing.assert_allclose(got[i], np.percentile(x[i][mask[i]], q), rtol=1e-5)
    assert np.isnan(got[3])


def test_normalize_volume_clips_breast_percentiles_to_unit_range():
  rng = np.random.default_rng(1)
  volume = rng.normal(600.0, 200.0, size=(4, 16, 16)).astype(np.float32)
  breast = np.zeros(volume.shape, bool)
  breast[:, 4:12, 4:12] = True
  image, (low, high) = preprocess.normalize_volume(volume, breast, (0.5, 99.5))
  np.testing.assert_allclose((low, high), np.percentile(volume[breast], [0.5, 99.5]), rtol=1e-5)
  assert image.dtype == np.float32 and image.min() == -1.0 and image.max() == 1.0
  inside = (volume > low) & (volume < high)
  np.testing.assert_allclose(image[inside], 2 * (volume[inside] - low) / (high - low) - 1, atol=1e-5)
  assert np.mean(image[breast] == 1.0) == pytest.approx(0.005, abs=0.004)
  with pytest.raises(ValueError, match="empty"):
    preprocess.normalize_volume(volume, np.zeros_like(breast))


def test_resize_images_antialiases_and_keeps_constants():
  checker = np.indices((1, 64, 64)).sum(axis=0) % 2 * 2.0 - 1.0  # pixel-level checkerboard
  small = preprocess.resize_images(checker, 16)
  assert small.shape == (1, 16, 16) and small.dtype == np.float32
  assert np.abs(small).max() < 0.1  # no aliasing: the checkerboard averages out
  np.testing.assert_allclose(preprocess.resize_images(np.full((2, 30, 30), 0.3), 64), 0.3, atol=1e-6)


def test_resize_labels_nearest():
  labels = np.random.default_rng(2).integers(0, 4, size=(3, 32, 32)).astype(np.uint8)
  np.testing.assert_array_equal(preprocess.resize_labels(labels, 16), labels[:, 1::2, 1::2])
  up = preprocess.resize_labels(labels, 64)
  np.testing.assert_array_equal(up[:, ::2, ::2], labels)
  np.testing.assert_array_equal(up[:, 1::2, 1::2], labels)


def test_pad_to_square_centres():
  x = np.ones((2, 3, 5))
  out = preprocess.pad_to_square(x, -1.0)
  assert out.shape == (2, 5, 5)
  np.testing.assert_array_equal(out[:, 1:4, :], 1.0)
  assert (out[:, 0] == -1).all() and (out[:, 4] == -1).all()


def test_prepare_slices_selects_by_breast_area():
  rng = np.random.default_rng(3)
  volume = rng.normal(500.0, 100.0, size=(5, 40, 48)).astype(np.float32)
  labels = np.zeros(volume.shape, np.uint8)
  labels[1, 10:30, 10:30] = 1  # 400 / 48² of the padded square = 17 %
  labels[2, 10:12, 10:12] = 2  # 4 pixels: below 5 %
  labels[4, 5:35, 5:40] = 1
  out = preprocess.prepare_slices(volume, labels, 24, (0.5, 99.5), 0.05)
  np.testing.assert_array_equal(out["slice_index"], [1, 4])
  assert out["image"].shape == (2, 24, 24, 1) and out["labels"].shape == (2, 24, 24)
  assert out["image"].min() >= -1 and out["image"].max() <= 1
  assert out["image"][0, 0, 0, 0] == -1.0  # padding rows above the 40-row image
  low, high = out["clip"]
  assert low < high
  with pytest.raises(ValueError, match="differ in shape"):
    preprocess.prepare_slices(volume, labels[:, :10], 24, (0.5, 99.5), 0.05)


def test_split_patients_fractions_and_errors():
  ids = [f"p{i:02d}" for i in range(20)] * 3
  parts = preprocess.split_patients(ids, (0.7, 0.15, 0.15), seed=0)
  assert [len(parts[k]) for k in preprocess.SPLITS] == [14, 3, 3]
  assert sorted(np.concatenate(list(parts.values())).tolist()) == sorted(set(ids))
  again = preprocess.split_patients(ids, (0.7, 0.15, 0.15), seed=0)
  assert all(np.array_equal(parts[k], again[k]) for k in parts)
  other = preprocess.split_patients(ids, (0.7, 0.15, 0.15), seed=1)
  assert not np.array_equal(parts["test"], other["test"])
  three = preprocess.split_patients(["a", "b", "c"], (0.7, 0.15, 0.15), 0)
  assert [len(v) for v in three.values()] == [1, 1, 1]
  with pytest.raises(ValueError, match="cannot fill"):
    preprocess.split_patients(["a", "b"], (0.7, 0.15, 0.15), 0)
