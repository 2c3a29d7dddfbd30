"""Phantom generator: determinism, variety, label fractions and tissue contrast."""

import numpy as np
import pytest

from mrixai_jax.data import phantom


@pytest.fixture(scope="module")
def batch():
  return phantom.generate(24, 64, seed=11, slices_per_patient=4)


def test_shapes_dtypes_and_range(batch):
  assert batch["image"].shape == (24, 64, 64, 1) and batch["image"].dtype == np.float32
  assert batch["labels"].shape == (24, 64, 64) and batch["labels"].dtype == np.uint8
  assert batch["image"].min() >= -1.0 and batch["image"].max() <= 1.0
  assert set(np.unique(batch["labels"]).tolist()) == {0, 1, 2, 3}
  assert batch["patient_id"][0] == "phantom_0000" and batch["patient_id"][23] == "phantom_0005"
  np.testing.assert_array_equal(batch["slice_index"][:5], [0, 1, 2, 3, 0])


def test_same_seed_identical_and_prefix_stable(batch):
  again = phantom.generate(24, 64, seed=11, slices_per_patient=4)
  shorter = phantom.generate(7, 64, seed=11, slices_per_patient=4)
  for key in ("image", "labels", "patient_id", "slice_index"):
    np.testing.assert_array_equal(again[key], batch[key])
    np.testing.assert_array_equal(shorter[key], batch[key][:7])
  middle = phantom.generate(5, 64, seed=11, slices_per_patient=4, start=9)
  for key in ("image", "labels", "patient_id", "slice_index"):
    np.testing.assert_array_equal(middle[key], batch[key][9:14])


def test_different_seeds_differ(batch):
  other = phantom.generate(24, 64, seed=12, slices_per_patient=4)
  assert np.abs(other["image"] - batch["image"]).mean() > 0.05
  assert (other["labels"] != batch["labels"]).mean() > 0.02


def test_label_fractions_plausible():
  data = phantom.generate(40, 96, seed=3, slices_per_patient=1)
  labels = data["labels"]
  breast = (labels > 0).mean(axis=(1, 2))
  assert np.all((breast > 0.08) & (breast < 0.6)), breast
  in_breast = (labels > 0).sum(axis=(1, 2))
  fgt = (labels == 2).sum(axis=(1, 2)) / in_breast
  vessels = (labels == 3).sum(axis=(1, 2)) / in_breast
  assert np.all(fgt < 0.6) and fgt.max() > 0.25 and fgt.min() < 0.1, fgt  # fatty ... dense
  assert np.all(vessels < 0.1) and vessels.mean() > 0.005, vessels  # >= 1 px wide at 96²


def test_intensity_order_fat_fgt_background(batch):
  image, labels = batch["image"][..., 0], batch["labels"]
  for i in range(len(image)):
    fat = image[i][labels[i] == 1].mean()
    fgt = image[i][labels[i] == 2].mean() if (labels[i] == 2).any() else None
    background = image[i][:4].mean()  # the rows above the breasts are air
    assert fat > background + 1.0
    if fgt is not None:
      assert fat > fgt > background, (i, fat, fgt, background)


def test_anterior_up():
  labels = phantom.generate(8, 64, seed=5)["labels"]
  rows = np.nonzero((labels > 0).any(axis=(0, 2)))[0]
  assert rows.max() < 48  # breast tissue lies in the upper (anterior) part; the chest below


def test_same_anatomy_at_two_sizes():
  small = phantom.generate(4, 64, seed=2)["labels"] > 0
  large = phantom.generate(4, 128, seed=2)["labels"] > 0
  down = large.reshape(4, 64, 2, 64, 2).mean(axis=(2, 4)) > 0.5
  assert (down == small).mean() > 0.97


def test_rejects_bad_arguments():
  with pytest.raises(ValueError, match="size"):
    phantom.generate(2, 8, seed=0)


def test_montage_png(tmp_path):
  path = tmp_path / "m.png"
  phantom.save_montage(str(path), num=4, size=64, seed=0)
  assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
