"""explain/statistics.py against plain references: a loop bootstrap with the same draws, scipy's
sign-flip permutation test, a brute-force Holm, on fresh random data."""

import itertools

import numpy as np
import pytest
import scipy.stats

from mrixai_jax.explain import statistics


def _uneven_groups(rng, num_images: int, num_groups: int) -> np.ndarray:
  groups = np.concatenate([np.arange(num_groups), rng.integers(0, num_groups, num_images - num_groups)])
  return np.array([f"patient_{g:03d}" for g in rng.permutation(groups)])


def _reference_two_level(values, groups, num_resamples, seed):
  """Loops over seeds and patients, concatenating the drawn patients' images."""
  names = sorted(set(groups))
  rng = np.random.default_rng(seed)
  means = []
  for _ in range(num_resamples):
    seeds = rng.integers(0, values.shape[0], size=values.shape[0])
    chosen = rng.integers(0, len(names), size=len(names))
    per_seed = []
    for s in seeds:
      pooled = np.concatenate([values[s][groups == names[g]] for g in chosen])
      per_seed.append(pooled.mean())
    means.append(np.mean(per_seed))
  return np.percentile(means, [2.5, 97.5])


def test_two_level_bootstrap_equals_loop_reference():
  rng = np.random.default_rng()
  values = rng.standard_normal((4, 23)) + rng.standard_normal(4)[:, None]  # a seed effect
  groups = _uneven_groups(rng, 23, 9)
  seed = int(rng.integers(1 << 30))
  out = statistics.two_level_bootstrap(values, groups, 300, seed)
  np.testing.assert_allclose(out["ci95"], _reference_two_level(values, groups, 300, seed), rtol=0, atol=1e-12)
  assert out["mean"] == pytest.approx(values.mean(), abs=1e-12)


def test_two_level_interval_widens_with_seed_spread():
  rng = np.random.default_rng()
  base = rng.standard_normal(30)
  same = np.stack([base] * 5)
  spread = same + np.array([-1.0, -0.5, 0.0, 0.5, 1.0])[:, None]
  narrow = statistics.two_level_bootstrap(same, None, 2000, 0)["ci95"]
  wide = statistics.two_level_bootstrap(spread, None, 2000, 0)["ci95"]
  assert wide[1] - wide[0] > 1.5 * (narrow[1] - narrow[0])


@pytest.mark.parametrize("num_groups", [5, 9])
def test_exact_sign_flip_equals_scipy(num_groups):
  rng = np.random.default_rng()
  diffs = rng.standard_normal((3, 20)) * 0.5 + 0.3
  groups = _uneven_groups(rng, 20, num_groups)
  per_group = [diffs.mean(axis=0)[groups == g].sum() for g in sorted(set(groups))]
  ref = scipy.stats.permutation_test((np.array(per_group),), np.sum, permutation_type="samples",
                                     n_resamples=10 ** 6, alternative="two-sided").pvalue
  assert statistics.sign_flip_test(diffs, groups, 10 ** 6, 0) == pytest.approx(ref, abs=1e-12)


def test_monte_carlo_sign_flip_is_close_to_exact():
  rng = np.random.default_rng()
  diffs = rng.standard_normal(16) + 0.4
  signs = np.array(list(itertools.product((1.0, -1.0), repeat=16)))
  exact = np.mean(np.abs(signs @ diffs) >= abs(diffs.sum()) - 1e-12)
  approx = statistics.sign_flip_test(diffs, None, 20000, int(rng.integers(1 << 30)))
  assert abs(approx - exact) < 0.02 and approx > 0


def test_holm_equals_brute_force():
  rng = np.random.default_rng()
  p = rng.uniform(0, 0.2, size=6)
  order = np.argsort(p)
  m = len(p)
  ref = np.empty(m)
  running = 0.0
  for k, j in enumerate(order):
    running = max(running, min(1.0, (m - k) * p[j]))
    ref[j] = running
  np.testing.assert_allclose(statistics.holm(p), ref, rtol=0, atol=1e-15)
  assert statistics.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])


def test_statistic_bootstrap_equals_loop_reference_on_curves():
  """A non-linear statistic of the mean curve (here its arg-max step) under the same two-level draws."""
  rng = np.random.default_rng()
  values = rng.standard_normal((3, 17, 5)) + np.linspace(0, 1, 5)
  groups = _uneven_groups(rng, 17, 6)
  seed = int(rng.integers(1 << 30))
  statistic = lambda curve: float(np.argmax(curve)) if curve[-1] > 0 else float("nan")
  out = statistics.bootstrap_statistic(values, groups, statistic, 200, seed)
  names = sorted(set(groups))
  draws = np.random.default_rng(seed)
  reference = []
  for _ in range(200):
    seeds = draws.integers(0, 3, size=3)
    chosen = draws.integers(0, len(names), size=len(names))
    curves = [np.concatenate([values[s][groups == names[g]] for g in chosen]).mean(axis=0) for s in seeds]
    reference.append(statistic(np.mean(curves, axis=0)))
  reference = np.array(reference)
  finite = reference[np.isfinite(reference)]
  assert out["defined_share"] == pytest.approx(finite.size / 200)
  point = statistic(values.mean(axis=(0, 1)))
  assert out["value"] == (None if np.isnan(point) else point)
  if finite.size > 100:
    np.testing.assert_allclose(out["ci95"], np.percentile(finite, [2.5, 97.5]), rtol=0, atol=1e-12)
  else:
    assert out["ci95"] is None
