"""Voxel-grid geometry: reorient a volume to the canonical axial layout and compare grids.

Patient coordinates are DICOM LPS (x toward patient Left, y Posterior, z Superior), in mm. An
`affine` is a `[4, 4]` matrix mapping array indices `(i0, i1, i2, 1)` to LPS mm. The canonical
layout is `[Z, Y, X]` with Z increasing toward Superior, Y toward Posterior and X toward Left: an
axial slice `volume[z]` shows anterior at the top and the patient's right on the image left
(radiological convention).
"""

import numpy as np

CANONICAL_AXIS = (2, 1, 0)  # array axis 0 <- S (LPS index 2), 1 <- P (1), 2 <- L (0)


def closest_axes(affine: np.ndarray) -> np.ndarray:
  """For each array axis the LPS axis (0 L, 1 P, 2 S) it runs closest to, as a permutation `[3]`.

  Greedy on the largest direction cosines, so oblique grids still map one-to-one.
  """
  directions = affine[:3, :3] / np.linalg.norm(affine[:3, :3], axis=0, keepdims=True)
  weight = np.abs(directions).copy()
  axes = np.full(3, -1)
  for _ in range(3):
    patient, array = np.unravel_index(np.argmax(weight), weight.shape)
    axes[array] = patient
    weight[patient, :] = -1
    weight[:, array] = -1
  return axes


def to_canonical(volume: np.ndarray, affine: np.ndarray) -> tuple:
  """Transposes and flips `volume [A0, A1, A2]` into the canonical `[Z, Y, X]` layout.

  Returns `(volume, affine, transform)`; `transform` holds `"order"` (source axis of each output
  axis) and `"flip"` (output axes reversed), enough to map labels on the same grid identically.
  """
  axes = closest_axes(affine)
  order = tuple(int(np.nonzero(axes == p)[0][0]) for p in CANONICAL_AXIS)
  out = np.transpose(volume, order)
  new_affine = affine.copy()
  new_affine[:, :3] = affine[:, list(order)]
  flips = []
  for axis in range(3):
    if new_affine[CANONICAL_AXIS[axis], axis] < 0:
      flips.append(axis)
      new_affine[:3, 3] += new_affine[:3, axis] * (out.shape[axis] - 1)
      new_affine[:3, axis] = -new_affine[:3, axis]
  if flips:
    out = np.flip(out, axis=tuple(flips))
  return np.ascontiguousarray(out), new_affine, {"order": order, "flip": tuple(flips)}


def apply_transform(volume: np.ndarray, transform: dict) -> np.ndarray:
  """Applies a `to_canonical` transform to another array on the same grid."""
  out = np.transpose(volume, transform["order"])
  if transform["flip"]:
    out = np.flip(out, axis=transform["flip"])
  return np.ascontiguousarray(out)


def spacing(affine: np.ndarray) -> tuple:
  """Voxel size in mm along each array axis."""
  return tuple(float(s) for s in np.linalg.norm(affine[:3, :3], axis=0))
