"""Summary statistics over images: mean ± SD and percentile-bootstrap confidence intervals."""

import numpy as np


def mean_sd(values) -> dict:
  """`{"mean", "sd"}` of a 1-D sample: sample SD (ddof = 1), None where undefined (one value; both
  None for none), so tables print "n/a" rather than a made-up 0."""
  values = np.asarray(values, np.float64).ravel()
  if values.size == 0:
    return {"mean": None, "sd": None}
  return {"mean": float(values.mean()), "sd": float(values.std(ddof=1)) if values.size > 1 else None}


def bootstrap_ci(values, num_resamples: int, seed: int, level: float = 0.95) -> list:
  """Percentile bootstrap CI `[lo, hi]` of the mean of `values: [N]` (resampling images).

  Deterministic for a given seed; `num_resamples` resamples of size N with replacement.
  """
  values = np.asarray(values, np.float64).ravel()
  if values.size == 0:
    raise ValueError("bootstrap_ci needs at least one value")
  rng = np.random.default_rng(seed)
  means = values[rng.integers(0, values.size, size=(num_resamples, values.size))].mean(axis=1)
  tail = (1.0 - level) / 2.0 * 100.0
  lo, hi = np.percentile(means, [tail, 100.0 - tail])
  return [float(lo), float(hi)]
