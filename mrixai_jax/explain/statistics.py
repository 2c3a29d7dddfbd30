"""Summary statistics of per-image scores: mean ± SD, bootstrap CIs that respect how the images
were drawn (seeds × patients), paired sign-flip tests and Holm's correction.

Images of one patient are not independent (they share an anatomy), and a head's score depends on
its training seed, so intervals resample both levels: seeds with replacement, then patients with
replacement (all images of a drawn patient enter). Paired tests flip the sign of each patient's
differences together.
"""

import itertools

import numpy as np

LEVEL = 0.95


def mean_sd(values) -> dict:
  """`{"mean", "sd"}` of a 1-D sample: sample SD (ddof = 1), None where undefined (one value; both
  None for none), so tables print "n/a" rather than a made-up 0."""
  values = np.asarray(values, np.float64).ravel()
  if values.size == 0:
    return {"mean": None, "sd": None}
  return {"mean": float(values.mean()), "sd": float(values.std(ddof=1)) if values.size > 1 else None}


def _percentile_ci(draws, level: float) -> list:
  tail = (1.0 - level) / 2.0 * 100.0
  lo, hi = np.percentile(draws, [tail, 100.0 - tail])
  return [float(lo), float(hi)]


def bootstrap_ci(values, num_resamples: int, seed: int, level: float = LEVEL) -> list:
  """Percentile bootstrap CI `[lo, hi]` of the mean of `values: [N]` (resampling images).

  Deterministic for a given seed; `num_resamples` resamples of size N with replacement.
  """
  values = np.asarray(values, np.float64).ravel()
  if values.size == 0:
    raise ValueError("bootstrap_ci needs at least one value")
  rng = np.random.default_rng(seed)
  means = values[rng.integers(0, values.size, size=(num_resamples, values.size))].mean(axis=1)
  return _percentile_ci(means, level)


def _group_index(groups, num_images: int) -> tuple:
  """`(codes [N] int, number of groups)`; groups None: every image its own group."""
  if groups is None:
    return np.arange(num_images), num_images
  groups = np.asarray(groups).ravel()
  if groups.size != num_images:
    raise ValueError(f"groups has {groups.size} entries for {num_images} images")
  _, codes = np.unique(groups, return_inverse=True)
  return codes, int(codes.max()) + 1


def _as_seed_matrix(values) -> np.ndarray:
  values = np.asarray(values, np.float64)
  values = values[None] if values.ndim == 1 else values
  if values.ndim != 2 or values.size == 0:
    raise ValueError(f"expected scores [seeds, images] or [images], got shape {values.shape}")
  return values


def _two_level_means(values, groups, num_resamples: int, seed: int) -> np.ndarray:
  """`[R, ...]`: per resample, the mean over S drawn seeds of the mean over the G drawn patient
  groups' images of `values: [S, N, ...]` (trailing axes, e.g. trajectory steps, kept). Draw order:
  per resample, the S seed indices, then the G group indices."""
  num_seeds, num_images = values.shape[:2]
  codes, num_groups = _group_index(groups, num_images)
  group_sums = np.zeros((num_seeds, num_groups) + values.shape[2:])
  np.add.at(group_sums, (slice(None), codes), values)
  group_sizes = np.bincount(codes, minlength=num_groups).astype(np.float64)
  rng = np.random.default_rng(seed)
  draws = np.empty((num_resamples,) + values.shape[2:])
  for r in range(num_resamples):
    seeds = rng.integers(0, num_seeds, size=num_seeds)
    chosen = rng.integers(0, num_groups, size=num_groups)
    draws[r] = np.mean(group_sums[seeds][:, chosen].sum(axis=1), axis=0) / group_sizes[chosen].sum()
  return draws


def two_level_bootstrap(values, groups, num_resamples: int, seed: int, level: float = LEVEL) -> dict:
  """Mean and percentile CI of `values: [S, N]` (seeds × images; `[N]`: one seed) resampling seeds
  and patients: each resample draws S seeds and G patient groups with replacement (`groups: [N]`
  labels, None: one image per group) and takes the mean over the drawn seeds of the mean over the
  drawn groups' images (`_two_level_means`). Returns `{"mean", "ci95"}` (the point estimate is the
  plain mean of `values`)."""
  values = _as_seed_matrix(values)
  draws = _two_level_means(values, groups, num_resamples, seed)
  return {"mean": float(values.mean()), "ci95": _percentile_ci(draws, level)}


def bootstrap_statistic(values, groups, statistic, num_resamples: int, seed: int, level: float = LEVEL) -> dict:
  """`statistic` of the mean curve, with the two-level bootstrap's percentile CI.

  values: `[S, N, K]` (seeds × images × e.g. trajectory steps); statistic: `[K] -> float` (NaN where
  undefined), applied to the mean over seeds and images and to each resample's mean (the draws of
  `two_level_bootstrap`). Returns `{"value", "ci95", "defined_share"}`: value None where the statistic
  is undefined on the data, ci95 None where it is undefined in more than half of the resamples."""
  values = np.asarray(values, np.float64)
  if values.ndim != 3 or values.size == 0:
    raise ValueError(f"expected values [seeds, images, K], got shape {values.shape}")
  point = float(statistic(values.mean(axis=(0, 1))))
  draws = np.array([statistic(curve) for curve in _two_level_means(values, groups, num_resamples, seed)], np.float64)
  finite = draws[np.isfinite(draws)]
  share = finite.size / max(draws.size, 1)
  return {"value": point if np.isfinite(point) else None,
          "ci95": _percentile_ci(finite, level) if share > 0.5 else None, "defined_share": float(share)}


def sign_flip_test(differences, groups, num_permutations: int, seed: int) -> float:
  """Two-sided p-value that the mean paired difference is 0: `differences: [S, N]` or `[N]` (per
  image, e.g. head A − head B on the same images; averaged over seeds first), the signs of each
  patient group's differences flipped together. Exact (all 2^G sign patterns) when 2^G <=
  `num_permutations`; otherwise Monte Carlo with `num_permutations` random patterns and the
  (1 + hits) / (1 + draws) correction, so p > 0."""
  per_image = _as_seed_matrix(differences).mean(axis=0)
  codes, num_groups = _group_index(groups, per_image.size)
  group_sums = np.bincount(codes, weights=per_image, minlength=num_groups)
  observed = abs(group_sums.sum())
  tolerance = 1e-12 * max(1.0, np.abs(group_sums).sum())
  if 2 ** num_groups <= num_permutations:
    signs = np.array(list(itertools.product((1.0, -1.0), repeat=num_groups)))
    return float(np.mean(np.abs(signs @ group_sums) >= observed - tolerance))
  rng = np.random.default_rng(seed)
  signs = rng.choice((1.0, -1.0), size=(num_permutations, num_groups))
  hits = int(np.sum(np.abs(signs @ group_sums) >= observed - tolerance))
  return (1.0 + hits) / (1.0 + num_permutations)


def holm(p_values) -> list:
  """Holm-Bonferroni adjusted p-values (same order as given): the k-th smallest of m is multiplied
  by m − k + 1, made non-decreasing in that order, capped at 1."""
  p = np.asarray(p_values, np.float64).ravel()
  order = np.argsort(p, kind="stable")
  scaled = p[order] * (p.size - np.arange(p.size))
  adjusted = np.minimum(np.maximum.accumulate(scaled), 1.0)
  out = np.empty_like(p)
  out[order] = adjusted
  return [float(v) for v in out]

