"""Intensity normalisation, resizing, slice selection and the patient-level split."""

import numpy as np


def masked_percentile(x: np.ndarray, mask: np.ndarray, q: float) -> np.ndarray:
  """Per-item `q`-th percentile (linear interpolation, as `np.percentile`) of `x[i][mask[i]]`.

  x, mask: `[N, ...]`; returns `[N, 1, ..., 1]` float32 (broadcastable to `x`); NaN where a mask
  is empty.
  """
  n = x.shape[0]
  flat = np.where(mask, x, np.inf).reshape(n, -1).astype(np.float64)
  flat.sort(axis=1)
  count = mask.reshape(n, -1).sum(axis=1)
  pos = (q / 100.0) * np.maximum(count - 1, 0)
  lo = np.floor(pos).astype(int)
  hi = np.minimum(lo + 1, np.maximum(count - 1, 0))
  rows = np.arange(n)
  with np.errstate(invalid="ignore"):  # empty masks: inf - inf, replaced by NaN below
    value = flat[rows, lo] + (pos - lo) * (flat[rows, hi] - flat[rows, lo])
  value = np.where(count > 0, value, np.nan)
  return value.reshape((n,) + (1,) * (x.ndim - 1)).astype(np.float32)


def scale_to_unit_range(x: np.ndarray, low, high) -> np.ndarray:
  """Clips `x` to [low, high] and maps it linearly to [-1, 1] (float32)."""
  low = np.asarray(low, np.float32)
  span = np.maximum(np.asarray(high, np.float32) - low, np.finfo(np.float32).tiny)
  return (np.clip((x - low) / span, 0.0, 1.0) * 2.0 - 1.0).astype(np.float32)


SPLITS = ("train", "validation", "test")


def split_patients(patient_ids, fractions, seed: int) -> dict:
  """Assigns each distinct patient to one split: `{"train"|"validation"|"test": sorted ids}`.

  `fractions` (train, validation, test) are shares of patients; the patient order is a permutation
  drawn from `seed`. Every split with a positive fraction gets at least one patient; raises
  ValueError when there are too few patients for that.
  """
  patients = np.unique(np.asarray(patient_ids).astype(str))
  fractions = np.asarray(fractions, np.float64)
  if fractions.shape != (3,) or np.any(fractions < 0) or fractions.sum() <= 0:
    raise ValueError(f"split_fractions must be three non-negative shares, got {tuple(fractions)}")
  fractions = fractions / fractions.sum()
  counts = np.round(fractions * len(patients)).astype(int)
  counts = np.where(fractions > 0, np.maximum(counts, 1), 0)
  counts[0] = len(patients) - counts[1:].sum()
  if np.any(counts[fractions > 0] < 1):
    raise ValueError(f"{len(patients)} patients cannot fill the splits {dict(zip(SPLITS, fractions))}")
  order = np.random.default_rng(seed).permutation(len(patients))
  bounds = np.cumsum(counts)[:-1]
  return {name: np.sort(patients[part]) for name, part in zip(SPLITS, np.split(order, bounds))}


def normalize_volume(volume: np.ndarray, breast: np.ndarray, percentiles=(0.5, 99.5)) -> tuple:
  """Clips `volume [Z,Y,X]` at `percentiles` of its breast voxels and maps that range to [-1, 1].

  Returns `(image float32 in [-1, 1], (low, high))`; the clip values let the transform be inverted.
  """
  if not breast.any():
    raise ValueError("cannot normalise: the breast mask is empty")
  low, high = (float(v) for v in np.percentile(volume[breast], percentiles))
  return scale_to_unit_range(volume, low, high), (low, high)


def pad_to_square(x: np.ndarray, value) -> np.ndarray:
  """Pads the last two axes of `x [..., H, W]` equally on both sides to `max(H, W)` with `value`."""
  h, w = x.shape[-2:]
  side = max(h, w)
  pad = [(0, 0)] * (x.ndim - 2) + [((side - h) // 2, side - h - (side - h) // 2),
                                   ((side - w) // 2, side - w - (side - w) // 2)]
  return np.pad(x, pad, constant_values=value)


def resize_images(x: np.ndarray, size: int) -> np.ndarray:
  """Bilinear resize of `x [N, H, W]` to `[N, size, size]` float32, Gaussian anti-aliased when
  shrinking (scikit-image)."""
  from skimage.transform import resize  # pylint: disable=import-outside-toplevel
  shrinking = size < max(x.shape[1:])
  out = resize(x.astype(np.float32), (x.shape[0], size, size), order=1, mode="edge",
               anti_aliasing=shrinking, preserve_range=True)
  return out.astype(np.float32)


def resize_labels(labels: np.ndarray, size: int) -> np.ndarray:
  """Nearest-neighbour resize of `labels [N, H, W]` to `[N, size, size]` (pixel-centre sampling)."""
  h, w = labels.shape[1:]
  rows = np.minimum(((np.arange(size) + 0.5) * h / size).astype(int), h - 1)
  cols = np.minimum(((np.arange(size) + 0.5) * w / size).astype(int), w - 1)
  return labels[:, rows[:, None], cols[None, :]]


def select_slices(labels: np.ndarray, min_breast_fraction: float) -> np.ndarray:
  """bool `[N]`: slices of `labels [N, H, W]` whose breast area (labels > 0) is at least the fraction."""
  return (labels > 0).mean(axis=(1, 2)) >= min_breast_fraction


def prepare_slices(volume: np.ndarray, labels: np.ndarray, image_size: int, clip_percentiles,
                   min_breast_fraction: float) -> dict:
  """Axial slices of one patient, ready for training.

  volume `[Z, Y, X]` (raw intensities), labels `[Z, Y, X]` uint8 on the same grid. Returns ``image
  [N, S, S, 1]`` float32 in [-1, 1], ``labels [N, S, S]`` uint8, ``slice_index [N]`` int32 (z of the
  kept slices) and ``clip`` (low, high) raw intensities mapped to -1 and +1.
  """
  if volume.shape != labels.shape:
    raise ValueError(f"volume {volume.shape} and labels {labels.shape} differ in shape")
  image, clip = normalize_volume(volume, labels > 0, clip_percentiles)
  image = resize_images(pad_to_square(image, -1.0), image_size)
  small = resize_labels(pad_to_square(labels, 0), image_size)
  keep = select_slices(small, min_breast_fraction)
  return {"image": image[keep][..., None], "labels": small[keep].astype(np.uint8),
          "slice_index": np.nonzero(keep)[0].astype(np.int32), "clip": clip}
