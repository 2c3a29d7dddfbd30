"""Faithfulness score: prototypes.md §5.2 test vector T7, numpy references, hand-made cases."""

import json
import pathlib

import numpy as np
import pytest

from mrixai_jax.explain import scoring as fa
from mrixai_jax.explain import statistics

T7 = json.loads((pathlib.Path(__file__).parent / "data" / "faithfulness_t7.json").read_text())


def test_rho_and_f_match_float64_test_vector_t7():
  src, gen = np.array(T7["T7.src_patches"]), np.array(T7["T7.gen_patches"])
  rho = np.asarray(fa.pearson(gen.astype(np.float32), src.astype(np.float32)))
  np.testing.assert_allclose(rho, T7["T7.rho"], atol=1e-6)
  f = np.asarray(fa.faithfulness(np.array(T7["T7.NIS"], np.float32), rho[None]))
  np.testing.assert_allclose(f, T7["T7.F(x) per image"], atol=1e-6)


def test_pearson_equals_numpy_corrcoef_on_random_windows():
  rng = np.random.default_rng()
  a, b = rng.normal(size=(2, 5, 7, 7))
  b = 0.5 * a + b
  ours = np.asarray(fa.pearson(a.astype(np.float32), b.astype(np.float32)))
  ref = [np.corrcoef(x.ravel(), y.ravel())[0, 1] for x, y in zip(a, b)]
  np.testing.assert_allclose(ours, ref, atol=1e-5)


def test_windows_are_shifted_inside_the_image():
  corners = np.asarray(fa.window_corners(np.array([[0.0, 0.0], [63.0, 10.0], [30.0, 30.0]]), 16, (64, 48)))
  np.testing.assert_array_equal(corners, [[0, 0, 16, 16], [48, 2, 64, 18], [22, 22, 38, 38]])
  assert np.all(corners[:, 2:] - corners[:, :2] == 16)


def test_source_patch_at_firing_location_gives_rho_one_and_flat_image_gives_zero():
  rng = np.random.default_rng()
  size, window = 32, 8
  source = rng.uniform(-1, 1, size=(size, size)).astype(np.float32)
  centers = fa.cell_centers(np.array([[1, 2], [3, 0]]), start=4.0, jump=8.0)
  corners = np.asarray(fa.window_corners(centers, window, (size, size)))
  patches = np.asarray(fa.extract_windows(source[None], corners[None], window))[0]
  generated = rng.uniform(-1, 1, size=(size, size)).astype(np.float32)
  y0, x0, y1, x1 = corners[0]
  generated[y0:y1, x0:x1] = source[y0:y1, x0:x1]
  images = np.stack([generated, np.full((size, size), 0.3, np.float32)])
  firing = np.stack([corners, corners])
  rho = np.asarray(fa.prototype_correlations(images, firing, patches))
  assert rho[0, 0] == pytest.approx(1.0, abs=1e-6)
  np.testing.assert_array_equal(rho[1], 0.0)
  nis = np.array([[0.7, 0.3], [0.5, 0.5]], np.float32)
  f = np.asarray(fa.faithfulness(nis, rho))
  assert f[1] == 0.0


def test_faithfulness_is_bounded_for_random_inputs():
  rng = np.random.default_rng()
  logits = rng.normal(size=(50, 6)) * 3
  nis = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
  rho = rng.uniform(-1, 1, size=(50, 6))
  f = np.asarray(fa.faithfulness(nis.astype(np.float32), rho.astype(np.float32)))
  assert np.all(f >= -1 - 1e-6) and np.all(f <= 1 + 1e-6)
  np.testing.assert_allclose(f, (nis * rho).sum(1), atol=1e-6)


def test_bootstrap_ci_matches_normal_theory_and_is_deterministic():
  rng = np.random.default_rng(0)
  values = rng.normal(2.0, 1.5, size=400)
  lo, hi = statistics.bootstrap_ci(values, 4000, seed=7)
  half = 1.96 * values.std(ddof=1) / np.sqrt(values.size)
  assert lo < values.mean() < hi
  assert (hi - lo) / 2 == pytest.approx(half, rel=0.1)
  assert statistics.bootstrap_ci(values, 4000, seed=7) == [lo, hi]
  assert statistics.mean_sd(values)["sd"] == pytest.approx(values.std(ddof=1))


def test_nis_rows_sum_to_one_and_ignore_a_constant_shift():
  from mrixai_jax.explain import normalized_influence  # pylint: disable=g-import-not-at-top

  rng = np.random.default_rng()
  s = rng.uniform(0, 9.21, size=(7, 12)).astype(np.float32)
  nis = np.asarray(normalized_influence(s))
  np.testing.assert_allclose(nis.sum(1), 1.0, atol=1e-6)
  np.testing.assert_allclose(np.asarray(normalized_influence(s + 3.7)), nis, atol=1e-6)
  reference = np.exp(s - s.max(1, keepdims=True))
  np.testing.assert_allclose(nis, reference / reference.sum(1, keepdims=True), atol=1e-6)
  active = np.arange(12) % 3 != 0
  masked = np.asarray(normalized_influence(s, active=active))
  np.testing.assert_array_equal(masked[:, ~active], 0.0)
  np.testing.assert_allclose(masked.sum(1), 1.0, atol=1e-6)
