"""Deletion check: does blurring where the top prototypes fire lower their similarity more than
blurring random windows of the same size on the same tissue? (A faithful explanation points at
pixels that matter.)
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


def top_prototypes(nis, top_k: int) -> np.ndarray:
  """`[N, k]` indices of each image's `top_k` prototypes by NIS (`nis: [N, P]`), largest first."""
  return np.argsort(-np.asarray(nis), axis=1, kind="stable")[:, :top_k]


def matched_random_cells(rng: np.random.Generator, allowed, num_random: int) -> np.ndarray:
  """`[R, N, k]` flat cells drawn uniformly among `allowed: [N, k, C]` (the cells of image i that
  qualify for the tissue of its k-th top prototype), `num_random` times; where no cell is allowed
  (the tissue is absent from the image) every cell is."""
  allowed = np.asarray(allowed, bool)
  allowed = np.where(allowed.any(axis=-1, keepdims=True), allowed, True)
  noise = rng.random((num_random,) + allowed.shape)
  return np.argmax(np.where(allowed, noise, -1.0), axis=-1)


def similarity_drops(similarity_fn, images, top, top_corners, random_corners, blur_sigma: float) -> dict:
  """Similarity drops `{"drop_top": [N], "drop_random": [N]}` of the top prototypes.

  similarity_fn: `[N, H, W, 1] -> [N, P]` pooled similarities of the head; images: `[N, H, W, 1]`
  in [-1, 1]; top: `[N, k]` prototypes whose similarity is followed (`top_prototypes`);
  top_corners: `[N, k, 4]` (y0, x0, y1, x1) windows where they fire; random_corners: `[R, N, k, 4]`
  windows of the same size (e.g. on the same tissue: `matched_random_cells`). The k windows of an
  image are replaced together by a Gaussian-blurred (σ = `blur_sigma` px) copy of the image; a
  drop is the mean over the k prototypes of similarity before minus after; `drop_random` averages
  the R random deletions.
  """
  images = np.asarray(images, np.float32)
  rows = np.arange(len(images))[:, None]
  blurred = ndimage.gaussian_filter(images, sigma=(0, blur_sigma, blur_sigma, 0))
  before = np.asarray(similarity_fn(images))[rows, top]

  def drop(corners):
    after = np.asarray(similarity_fn(_paste(images, blurred, np.asarray(corners))))[rows, top]
    return (before - after).mean(axis=1)

  return {"drop_top": drop(top_corners), "drop_random": np.mean([drop(c) for c in random_corners], axis=0)}
