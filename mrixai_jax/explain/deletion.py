"""Deletion check: does blurring where the top prototypes fire lower their similarity more than
blurring random windows of the same size? (A faithful explanation points at pixels that matter.)
"""

import numpy as np
from scipy import ndimage


def _paste(images, blurred, corners):
  """Copies `blurred` into `images` inside each window of `corners: [N, K, 4]` (numpy, new array)."""
  out = images.copy()
  for i, windows in enumerate(corners):
    for y0, x0, y1, x1 in windows:
      out[i, y0:y1, x0:x1] = blurred[i, y0:y1, x0:x1]
  return out


def _random_corners(rng, num_images, num_windows, size, image_hw):
  y0 = rng.integers(0, image_hw[0] - size + 1, size=(num_images, num_windows))
  x0 = rng.integers(0, image_hw[1] - size + 1, size=(num_images, num_windows))
  return np.stack([y0, x0, y0 + size, x0 + size], axis=-1)


def deletion_check(similarity_fn, images, firing_corners, nis, top_k: int, num_random: int,
                   blur_sigma: float, seed: int) -> dict:
  """Similarity drops `{"drop_top": [N], "drop_random": [N]}` (same prototypes, same window count).

  similarity_fn: `[N, H, W, 1] -> [N, P]` pooled similarities of the head.
  images: `[N, H, W, 1]` in [-1, 1]; firing_corners: `[N, P, 4]` (y0, x0, y1, x1) windows where
  each prototype fires; nis: `[N, P]`. For each image the windows of its `top_k` prototypes (by
  NIS) are replaced by a Gaussian-blurred (σ = `blur_sigma` px) copy; the drop is the mean, over
  those prototypes, of similarity before minus after. The random baseline deletes `top_k` windows
  of the same size at uniform positions, `num_random` times, and averages the same drop.
  """
  images = np.asarray(images, np.float32)
  firing_corners = np.asarray(firing_corners)
  n, h, w, _ = images.shape
  top = np.argsort(-np.asarray(nis), axis=1)[:, :top_k]  # [N, k]
  rows = np.arange(n)[:, None]
  blurred = ndimage.gaussian_filter(images, sigma=(0, blur_sigma, blur_sigma, 0))
  before = np.asarray(similarity_fn(images))[rows, top]

  def drop(corners):
    after = np.asarray(similarity_fn(_paste(images, blurred, corners)))[rows, top]
    return (before - after).mean(axis=1)

  size = int(firing_corners[0, 0, 2] - firing_corners[0, 0, 0])
  rng = np.random.default_rng(seed)
  random_drops = [drop(_random_corners(rng, n, top_k, size, (h, w))) for _ in range(num_random)]
  return {"drop_top": drop(firing_corners[rows, top]), "drop_random": np.mean(random_drops, axis=0)}
