"""The emergence statistic on curves whose half-rise step is known by hand."""

import math

import numpy as np
import pytest

from mrixai_jax.explain import emergence


def test_half_rise_is_interpolated_between_captured_steps():
  steps = [0, 10, 20, 30, 49]
  # Final 0.4, half 0.2: reached between steps 10 (0.1) and 20 (0.3), a half of the way: 15.
  assert emergence.half_rise_step([0.0, 0.1, 0.3, 0.35, 0.4], steps) == pytest.approx(15.0)
  # A random linear rise from 0 to a at steps 0..K-1 reaches a/2 at the middle step.
  rng = np.random.default_rng()
  a, k = rng.uniform(0.1, 1.0), int(rng.integers(3, 12))
  assert emergence.half_rise_step(np.linspace(0, a, k), np.arange(k)) == pytest.approx((k - 1) / 2)


def test_first_crossing_counts_and_early_or_undefined_cases():
  steps = [0, 10, 20, 30]
  assert emergence.half_rise_step([0.0, 0.5, 0.1, 0.4], steps) == pytest.approx(4.0)  # first crossing of 0.2
  assert emergence.half_rise_step([0.3, 0.1, 0.2, 0.4], steps) == 0.0  # already at half at the first step
  assert math.isnan(emergence.half_rise_step([0.2, 0.1, 0.0, -0.1], steps))  # final F <= 0: nothing emerges
