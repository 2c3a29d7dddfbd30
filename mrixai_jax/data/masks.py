"""Segmentation masks -> our label map (0 background/outside breast, 1 fat, 2 FGT, 3 vessels).

Duke (Lew et al. 2024) masks are 3D Slicer ``.seg.nrrd`` files per patient:
``Segmentation_Breast_MRI_XXX_Breast.seg.nrrd`` (breast) and
``Segmentation_Breast_MRI_XXX_Dense_and_Vessels.seg.nrrd`` (FGT and vessels). Segments are
identified by the header keys ``Segment{i}_Name`` / ``_LabelValue`` / ``_Layer`` (files differ in
which value a segment has, and some are 4-D "layered" ``[layer, x, y, z]``), and the voxels are
placed on the DICOM grid through the NRRD ``space``/``space directions``/``space origin`` geometry.
FGT wins where FGT and vessels overlap (as in Lew et al.); FGT and vessels outside the breast mask
are background. User label maps can also be 2-D PNG or NPY files holding the values 0..3.
"""

import os
import re

import numpy as np

from mrixai_jax.errors import UserError

NUM_LABELS = 4
BACKGROUND, FAT, FGT, VESSELS = 0, 1, 2, 3
GRID_TOLERANCE = 0.25  # voxels: mask voxel centres must coincide with the image's
SEGMENT_NAMES = {  # lower-case name fragment -> tissue
    "vessel": "vessels", "dense": "fgt", "fgt": "fgt", "fibroglandular": "fgt", "breast": "breast"}
_SPACE_TO_LPS = {  # sign flips turning each NRRD space into LPS
    "left-posterior-superior": (1, 1, 1), "lps": (1, 1, 1),
    "right-anterior-superior": (-1, -1, 1), "ras": (-1, -1, 1),
    "left-anterior-superior": (1, -1, 1), "las": (1, -1, 1)}


class MaskError(UserError, ValueError):
  """Bad mask input; the message names the file and the problem."""

  def __init__(self, path: str, reason: str):
    super().__init__(f"{path}: {reason}")
    self.path, self.reason = path, reason


DUKE_BREAST_SEGMENTS = (("Breast", 1, 0),)  # used when a file has no Segment{i}_* keys
DUKE_DENSE_VESSELS_SEGMENTS = (("Vessels", 1, 0), ("Dense", 2, 0))  # Lew et al.'s canonical values


def _segments_in_header(header: dict, path: str, default: tuple) -> list:
  """`[(name, label_value, layer)]` from Slicer ``Segment{i}_*`` keys (defaults: value i+1, layer 0);
  `default` when the header has none."""
  indices = sorted({int(m.group(1)) for key in header for m in [re.match(r"Segment(\d+)_Name$", key)] if m})
  if not indices:
    if default:
      return list(default)
    raise MaskError(path, "no Segment{i}_Name keys in the NRRD header (not a Slicer .seg.nrrd?)")
  out = []
  for i in indices:
    try:
      value = int(header.get(f"Segment{i}_LabelValue", i + 1))
      layer = int(header.get(f"Segment{i}_Layer", 0))
    except ValueError as e:
      raise MaskError(path, f"Segment{i}: non-integer LabelValue/Layer ({e})") from e
    out.append((str(header[f"Segment{i}_Name"]), value, layer))
  return out


def tissue_of(name: str, path: str) -> str:
  """`"breast" | "fgt" | "vessels"` for a segment name (case-insensitive fragments)."""
  lower = name.lower()
  for fragment, tissue in SEGMENT_NAMES.items():
    if fragment in lower:
      return tissue
  raise MaskError(path, f"segment name {name!r} is none of {sorted(set(SEGMENT_NAMES.values()))}")


def _nrrd_affine(header: dict, spatial_axes: list, path: str) -> np.ndarray:
  """Index -> LPS mm affine of the spatial axes of an NRRD file."""
  space = str(header.get("space", "")).lower()
  if space not in _SPACE_TO_LPS:
    raise MaskError(path, f"NRRD space {header.get('space')!r} is not one of {sorted(_SPACE_TO_LPS)}")
  directions = np.asarray(header.get("space directions"), np.float64)
  origin = np.asarray(header.get("space origin"), np.float64)
  if directions.ndim != 2 or origin.shape != (3,):
    raise MaskError(path, "missing 'space directions' or 'space origin' (cannot place the mask)")
  flip = np.asarray(_SPACE_TO_LPS[space], np.float64)
  affine = np.eye(4)
  affine[:3, :3] = (directions[spatial_axes] * flip).T
  affine[:3, 3] = origin * flip
  return affine


def read_seg_nrrd(path: str, default_segments: tuple = ()) -> tuple:
  """Reads a Slicer segmentation: `({segment name: bool [X, Y, Z]}, affine [4, 4] index -> LPS mm)`.

  Handles 3-D label maps and 4-D layered files (`[layer, X, Y, Z]`); each segment is resolved from
  its name, label value and layer, so swapped label values give the same result.
  `default_segments` (`(name, value, layer)` triples) apply to files without segment keys.
  """
  import nrrd  # pylint: disable=import-outside-toplevel
  try:
    data, header = nrrd.read(path)
  except Exception as e:  # pylint: disable=broad-except
    raise MaskError(path, f"cannot read NRRD: {e}") from e
  kinds = [str(k).lower() for k in header.get("kinds", ["domain"] * data.ndim)]
  spatial = [i for i, k in enumerate(kinds) if k in ("domain", "space")]
  if data.ndim == 3:
    layers = data[None]
  elif data.ndim == 4 and len(spatial) == 3:
    layers = np.moveaxis(data, [i for i in range(4) if i not in spatial][0], 0)
  else:
    raise MaskError(path, f"expected a 3-D or layered 4-D segmentation, got shape {data.shape}")
  affine = _nrrd_affine(header, spatial if data.ndim == 4 else [0, 1, 2], path)
  segments, declared = {}, {}
  for name, value, layer in _segments_in_header(header, path, default_segments):
    if not 0 <= layer < len(layers):
      raise MaskError(path, f"segment {name!r} is on layer {layer}, file has {len(layers)}")
    segments[name] = segments.get(name, False) | (layers[layer] == value)
    declared.setdefault(layer, {0}).add(value)
  for layer, values in declared.items():
    stray = np.setdiff1d(np.unique(layers[layer]), list(values))
    if stray.size:
      raise MaskError(path, f"layer {layer} holds values {stray.tolist()} that no segment declares "
                            f"(declared {sorted(values)})")
  return segments, affine


def resample_to_grid(mask: np.ndarray, mask_affine: np.ndarray, shape: tuple,
                     affine: np.ndarray, path: str) -> np.ndarray:
  """Nearest-voxel copy of `mask` onto the image grid (`shape`, `affine`); outside -> 0.

  The grids must share voxel centres (within GRID_TOLERANCE voxels everywhere): same spacing, axes
  along the same lines (in any order or sign) and an integer offset. A Slicer segmentation may be
  cropped to its extent or stored in another axis order, but is never resliced.
  """
  to_mask = np.linalg.inv(mask_affine) @ affine  # image index -> mask index
  source_axis = np.argmax(np.abs(to_mask[:3, :3]), axis=0)
  integer_map = np.zeros((4, 4))
  integer_map[3, 3] = 1
  integer_map[source_axis, np.arange(3)] = np.sign(to_mask[source_axis, np.arange(3)])
  integer_map[:3, 3] = np.round(to_mask[:3, 3])
  corners = np.array([[*c, 1] for c in np.ndindex(2, 2, 2)], float).T * np.array([[n - 1] for n in shape]
                                                                                 + [[1]])
  if (sorted(source_axis) != [0, 1, 2]
      or np.abs((to_mask - integer_map) @ corners).max() > GRID_TOLERANCE):
    raise MaskError(path, "mask grid does not match the image grid (different spacing, orientation or "
                          "a non-integer voxel offset)")
  aligned = np.transpose(mask, source_axis)  # axis a of `aligned` runs along image axis a
  offsets = integer_map[source_axis, 3].astype(int)
  for axis in range(3):
    if integer_map[source_axis[axis], axis] < 0:  # source index = offset - i: flip to offset' + i
      aligned = np.flip(aligned, axis=axis)
      offsets[axis] = aligned.shape[axis] - 1 - offsets[axis]
  out = np.zeros(shape, mask.dtype)
  target, source = [], []
  for axis in range(3):
    lo = max(0, -offsets[axis])
    hi = min(shape[axis], aligned.shape[axis] - offsets[axis])
    if hi <= lo:
      raise MaskError(path, "mask does not overlap the image volume")
    target.append(slice(lo, hi))
    source.append(slice(lo + offsets[axis], hi + offsets[axis]))
  out[tuple(target)] = aligned[tuple(source)]
  return out


def duke_label_map(breast_path: str, dense_vessels_path: str, shape: tuple,
                   affine: np.ndarray) -> np.ndarray:
  """Our label map `[Z, Y, X]` uint8 for a DICOM volume of `shape` with `affine` (from `load_series`).

  Every segment of the breast file counts as breast; the other file's segments are named FGT
  ("Dense") or vessels.
  """
  breast_segments, breast_affine = read_seg_nrrd(breast_path, DUKE_BREAST_SEGMENTS)
  breast = resample_to_grid(np.any(list(breast_segments.values()), axis=0), breast_affine, shape,
                            affine, breast_path)
  segments, dv_affine = read_seg_nrrd(dense_vessels_path, DUKE_DENSE_VESSELS_SEGMENTS)
  tissues = {}
  for name, voxels in segments.items():
    tissue = tissue_of(name, dense_vessels_path)
    tissues[tissue] = tissues.get(tissue, False) | voxels
  labels = np.where(breast, FAT, BACKGROUND).astype(np.uint8)
  for tissue, value in (("vessels", VESSELS), ("fgt", FGT)):  # FGT last: wins on overlap
    if tissue in tissues:
      voxels = resample_to_grid(tissues[tissue], dv_affine, shape, affine, dense_vessels_path)
      labels[voxels & breast] = value
  return labels


def duke_mask_paths(mask_root: str, patient_id: str) -> tuple:
  """`(breast, dense_and_vessels)` .seg.nrrd paths of a patient under `Segmentation_Masks_NRRD/`."""
  folder = os.path.join(mask_root, patient_id)
  paths = tuple(os.path.join(folder, f"Segmentation_{patient_id}_{part}.seg.nrrd")
                for part in ("Breast", "Dense_and_Vessels"))
  for path in paths:
    if not os.path.isfile(path):
      raise MaskError(path, "segmentation file not found")
  return paths


def validate_label_map(labels: np.ndarray, path: str, shape: tuple = None) -> np.ndarray:
  """Checks a 2-D label map (integer values 0..3, optional `shape`) and returns it as uint8."""
  labels = np.asarray(labels)
  if labels.ndim != 2:
    raise MaskError(path, f"label map must be 2-D [H, W], got shape {labels.shape}")
  if shape is not None and tuple(labels.shape) != tuple(shape):
    raise MaskError(path, f"label map is {labels.shape[0]}x{labels.shape[1]}, image is "
                          f"{shape[0]}x{shape[1]}")
  if labels.dtype.kind == "f" and not np.all(np.mod(labels, 1) == 0):
    raise MaskError(path, "label map holds non-integer values")
  if labels.dtype.kind not in "biuf":
    raise MaskError(path, f"label map has non-numeric dtype {labels.dtype}")
  bad = np.setdiff1d(np.unique(labels), np.arange(NUM_LABELS))
  if bad.size:
    raise MaskError(path, f"label values {bad[:10].tolist()} outside 0..{NUM_LABELS - 1} "
                          "(0 background, 1 fat, 2 FGT, 3 vessels)")
  return labels.astype(np.uint8)


def read_label_map(path: str, shape: tuple = None) -> np.ndarray:
  """Reads a user label map `[H, W]` uint8 from a PNG (8/16-bit grey or palette, no colour) or NPY."""
  ext = os.path.splitext(path)[1].lower()
  if ext == ".npy":
    try:
      labels = np.load(path, allow_pickle=False)
    except Exception as e:  # pylint: disable=broad-except
      raise MaskError(path, f"cannot read NPY: {e}") from e
  elif ext == ".png":
    from PIL import Image  # pylint: disable=import-outside-toplevel
    try:
      with Image.open(path) as image:
        if image.mode not in ("L", "P", "I", "I;16", "1"):
          raise MaskError(path, f"PNG mode {image.mode} is not a label map: save integer labels 0..3 "
                                "as a greyscale PNG (colours are for display only)")
        labels = np.asarray(image)
    except MaskError:
      raise
    except Exception as e:  # pylint: disable=broad-except
      raise MaskError(path, f"cannot read PNG: {e}") from e
  else:
    raise MaskError(path, f"unsupported label map format {ext!r} (use .png or .npy)")
  return validate_label_map(labels, path, shape)
