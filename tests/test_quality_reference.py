"""Intensity statistics and the quality references, against direct numpy computations."""

import numpy as np
import pytest

from configs import demo
from mrixai_jax.data import phantom
from mrixai_jax.metrics import intensity, references


def test_tissue_means_and_offsets_equal_numpy():
  rng = np.random.default_rng(0)
  labels = rng.integers(0, 4, (5, 16, 16))
  real = rng.uniform(-1, 1, (5, 16, 16, 1)).astype(np.float32)
  fake = real + 0.25  # a pure offset shows as the same difference in every tissue
  table = intensity.intensity_table(fake, real, labels)
  for name, value in intensity.TISSUES.items():
    expected = real[..., 0][labels == value].astype(np.float64).mean()
    assert table[name]["real_mean"] == pytest.approx(expected, abs=1e-9)
    assert table[name]["diff"] == pytest.approx(0.25, abs=1e-6)
  no_vessels = np.where(labels == 3, 0, labels)
  assert intensity.intensity_table(fake, real, no_vessels)["vessels"] == {"sample_mean": None, "real_mean": None,
                                                                         "diff": None}


def test_air_statistics_equal_numpy():
  rng = np.random.default_rng(1)
  real = rng.uniform(-1, 1, (3, 8, 8, 1))
  fake = rng.normal(0, 0.3, real.shape)
  air = real < -0.8
  stats = intensity.air_statistics(fake, real, -0.8)
  assert stats["pixels"] == air.sum()
  assert stats["sample_sd"] == pytest.approx(fake[air].std()) and stats["real_sd"] == pytest.approx(real[air].std())
  assert stats["sd_ratio"] == pytest.approx(fake[air].std() / real[air].std())
  assert intensity.air_statistics(fake, real, -2.0)["pixels"] == 0


def test_shuffled_pairs_pick_another_patient():
  ids = np.array(["a", "a", "b", "c", "c", "c"])
  partners = references.shuffled_pairs(ids, np.arange(6), seed=3)
  assert np.all(ids[partners] != ids)
  one_patient = references.shuffled_pairs(np.array(["a"] * 3), np.array([0, 0, 1]), 0)
  assert list(one_patient) == [2, 2, 0] or list(one_patient) == [2, 2, 1]  # another slice of it
  assert list(references.shuffled_pairs(np.array(["a", "a"]), np.array([4, 4]), 0)) == [0, 1]  # one slice


def test_noise_oracle_is_the_same_slice_with_fresh_noise():
  d = demo.get_config().data
  spp, size = int(d.phantom_slices_per_patient), 64
  data = phantom.generate(25, size, int(d.seed), spp)
  rows = [3, 17, 24]
  ids, slices = data["patient_id"][rows], data["slice_index"][rows]
  assert [references.phantom_row(p, s, spp) for p, s in zip(ids, slices)] == rows
  d.image_size = size
  oracle = references.noise_oracle(ids, slices, d, noise_seed=7)
  same = phantom.generate(25, size, int(d.seed), spp)  # noise_seed=None: the dataset's own noise
  np.testing.assert_array_equal(same["image"], data["image"])
  again = phantom.generate(1, size, int(d.seed), spp, start=rows[0], noise_seed=7)
  np.testing.assert_array_equal(again["labels"][0], data["labels"][rows[0]])
  diff = oracle - data["image"][rows]
  assert 0 < np.abs(diff).mean() < 0.1  # fresh noise, same anatomy and texture
  breast = data["labels"][rows] > 0
  assert abs(diff[..., 0][breast].mean()) < 0.02
  with pytest.raises(ValueError, match="not a phantom patient id"):
    references.phantom_row("Breast_MRI_001", 0, spp)
