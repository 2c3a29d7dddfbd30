"""DICOM series reader: a folder (or file) of MR DICOM -> volume `[Z, Y, X]` float32 + metadata.

Files are grouped by SeriesInstanceUID and, when one series mixes time points, by temporal
position (TemporalPositionIdentifier / TemporalPositionIndex, else AcquisitionNumber when that
separates repeated slice positions). Slices are ordered by ImagePositionPatient projected on the
slice normal (never by file name), RescaleSlope/Intercept are applied, and the volume is
reoriented to the canonical axial layout of `orientation.py` (Z toward superior, anterior at the
top, patient right on the image left). Enhanced multi-frame files contribute one slice per frame.

A folder may hold several series: `list_series(path)` describes them, and `load_series(path,
series=ID)` picks one (by series id or SeriesInstanceUID); without `series`, a folder with more
than one image series is an error that lists them. Objects that are not MR images (SEG, SR, ...)
and files without a DICOM preamble (unless `force=True`) are skipped and reported in
`meta["skipped"]`. Every other defect raises `DicomError` naming the file and the reason.
"""

import dataclasses
import os

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError

from mrixai_jax.data import orientation
from mrixai_jax.errors import UserError

ORIENTATION_TOLERANCE = 1e-3  # max difference of direction cosines within a series
PIXEL_SPACING_TOLERANCE = 1e-3  # relative
SLICE_GAP_TOLERANCE = 0.02  # relative deviation of a slice gap from the median gap
MISSING_SLICE_GAP = 1.5  # a gap this many times the median means missing slices
IN_PLANE_SHIFT_TOLERANCE = 0.5  # pixels: slices must stack along the normal
IMAGE_MODALITIES = ("MR",)


class DicomError(UserError, ValueError):
  """Bad DICOM input; `path` is the offending file (or folder) and `reason` says what is wrong."""

  def __init__(self, path: str, reason: str):
    super().__init__(f"{path}: {reason}")
    self.path, self.reason = path, reason


@dataclasses.dataclass
class _Frame:
  """Header facts of one 2D slice (a single-frame file, or one frame of a multi-frame file)."""
  file: str
  frame: int  # index into the file's frames; -1 for a single-frame file
  series_uid: str
  temporal: object  # temporal position, None when absent
  acquisition: object
  iop: np.ndarray  # [6] row direction, column direction
  ipp: np.ndarray  # [3] LPS mm of the first (top-left) pixel
  pixel_spacing: np.ndarray  # [2] mm between rows, between columns
  shape: tuple  # (rows, columns)
  slope: float
  intercept: float
  thickness: object = None  # SliceThickness in mm (None when absent or empty)

  @property
  def normal(self) -> np.ndarray:
    return np.cross(self.iop[:3], self.iop[3:])

  @property
  def name(self) -> str:
    return self.file if self.frame < 0 else f"{self.file} (frame {self.frame + 1})"


def _number(value, default=None):
  """A DICOM numeric value as float; empty strings and absent values give `default`."""
  if value is None or (isinstance(value, str) and not value.strip()):
    return default
  try:
    return float(value)
  except (TypeError, ValueError):
    return default


def _vector(ds, keyword: str, size: int, where: str) -> np.ndarray:
  value = ds.get(keyword) if ds is not None else None
  try:
    vec = np.asarray([float(v) for v in value], np.float64) if value not in (None, "") else None
  except (TypeError, ValueError):
    vec = None
  if vec is None or vec.shape != (size,):
    raise DicomError(where, f"missing or malformed {keyword} (need {size} numbers, got {value!r})")
  return vec


def _group_item(frame_group, shared, sequence: str):
  """First item of functional-group `sequence` for a frame: per-frame first, then shared."""
  for item in (frame_group, shared):
    value = item.get(sequence) if item is not None else None
    if value:
      return value[0]
  return None


def _frames_of(ds, file: str) -> list:
  """Header facts of every slice in dataset `ds` read from `file`."""
  uid = str(ds.get("SeriesInstanceUID", "") or "")
  if not uid:
    raise DicomError(file, "missing SeriesInstanceUID (0020,000E)")
  rows, cols = ds.get("Rows"), ds.get("Columns")
  if not rows or not cols:
    raise DicomError(file, "missing Rows/Columns")
  num_frames = int(_number(ds.get("NumberOfFrames"), 1))
  per_frame = ds.get("PerFrameFunctionalGroupsSequence")
  if num_frames > 1 or per_frame is not None:
    shared = ds.get("SharedFunctionalGroupsSequence")
    shared = shared[0] if shared else None
    if per_frame is None or len(per_frame) != num_frames:
      raise DicomError(file, f"multi-frame file with {num_frames} frames lacks per-frame geometry "
                             "(PerFrameFunctionalGroupsSequence)")
    frames = []
    for i, group in enumerate(per_frame):
      where = f"{file} (frame {i + 1})"
      position = _group_item(group, shared, "PlanePositionSequence")
      orient = _group_item(group, shared, "PlaneOrientationSequence")
      measures = _group_item(group, shared, "PixelMeasuresSequence")
      rescale = _group_item(group, shared, "PixelValueTransformationSequence")
      content = _group_item(group, shared, "FrameContentSequence")
      frames.append(_Frame(
          file=file, frame=i, series_uid=uid,
          temporal=content.get("TemporalPositionIndex") if content is not None else None,
          acquisition=None,
          iop=_vector(orient, "ImageOrientationPatient", 6, where),
          ipp=_vector(position, "ImagePositionPatient", 3, where),
          pixel_spacing=_vector(measures, "PixelSpacing", 2, where),
          shape=(int(rows), int(cols)),
          slope=_number(rescale.get("RescaleSlope") if rescale is not None else None, 1.0),
          intercept=_number(rescale.get("RescaleIntercept") if rescale is not None else None, 0.0),
          thickness=_number(measures.get("SliceThickness"))))
    return frames
  return [_Frame(
      file=file, frame=-1, series_uid=uid,
      temporal=ds.get("TemporalPositionIdentifier"), acquisition=ds.get("AcquisitionNumber"),
      iop=_vector(ds, "ImageOrientationPatient", 6, file),
      ipp=_vector(ds, "ImagePositionPatient", 3, file),
      pixel_spacing=_vector(ds, "PixelSpacing", 2, file),
      shape=(int(rows), int(cols)),
      slope=_number(ds.get("RescaleSlope"), 1.0), intercept=_number(ds.get("RescaleIntercept"), 0.0),
      thickness=_number(ds.get("SliceThickness")))]


def _files_under(path: str) -> list:
  if os.path.isfile(path):
    return [path]
  if not os.path.isdir(path):
    raise DicomError(path, "no such file or folder")
  found = []
  for root, dirs, names in os.walk(path):
    dirs.sort()
    found.extend(os.path.join(root, n) for n in sorted(names) if not n.startswith("."))
  return found


def _scan(path: str, force: bool) -> tuple:
  """Reads headers under `path`: (frames of MR images, series descriptions, skipped notes)."""
  frames, info, skipped = [], {}, []
  for file in _files_under(path):
    if not os.path.isfile(file):  # a FIFO or device would block or never end; a broken link has no data
      skipped.append((file, "not a regular file (FIFO, socket, device or broken link)"))
      continue
    try:
      ds = pydicom.dcmread(file, stop_before_pixels=True, force=force)
    except InvalidDicomError:
      skipped.append((file, "not a DICOM file (no preamble; force=True reads it anyway)"))
      continue
    except Exception as e:  # pylint: disable=broad-except
      raise DicomError(file, f"cannot read DICOM header: {e}") from e
    modality = str(ds.get("Modality", "") or "")
    if modality not in IMAGE_MODALITIES:
      skipped.append((file, f"not an MR image (Modality {modality or 'missing'!r}, "
                            f"SOP class {ds.get('SOPClassUID', '?')})"))
      continue
    new = _frames_of(ds, file)
    frames.extend(new)
    info.setdefault(new[0].series_uid, {
        "series_description": str(ds.get("SeriesDescription", "") or ""),
        "series_number": ds.get("SeriesNumber"),
        "patient_id": str(ds.get("PatientID", "") or ""),
        "study_uid": str(ds.get("StudyInstanceUID", "") or ""),
        "modality": modality,
        "manufacturer": str(ds.get("Manufacturer", "") or ""),
    })
  return frames, info, skipped


def _positions(frames: list) -> np.ndarray:
  return np.array([f.ipp @ f.normal for f in frames])


def _split_series(frames: list) -> list:
  """Splits one series into `(temporal_position, frames)` groups (see module docstring)."""
  temporal = [f.temporal for f in frames]
  if len(set(map(str, temporal))) > 1:
    key = temporal
  else:
    acquisition = [f.acquisition for f in frames]
    positions = np.round(_positions(frames), 3)
    repeated = len(set(positions.tolist())) < len(positions)
    key = acquisition if repeated and len(set(map(str, acquisition))) > 1 else [None] * len(frames)
  groups = {}
  for k, f in zip(key, frames):
    groups.setdefault(None if k is None else str(k), []).append(f)
  return sorted(groups.items(), key=lambda kv: (kv[0] is not None, _sortable(kv[0])))


def _sortable(value):
  number = _number(value)
  return (0, number, "") if number is not None else (1, 0.0, str(value))


def _group_id(uid: str, temporal) -> str:
  return uid if temporal is None else f"{uid}#t{temporal}"


def _groups(frames: list) -> dict:
  by_uid = {}
  for f in frames:
    by_uid.setdefault(f.series_uid, []).append(f)
  out = {}
  for uid, members in by_uid.items():
    for temporal, group in _split_series(members):
      out[_group_id(uid, temporal)] = (uid, temporal, group)
  return out


def list_series(path: str, force: bool = False) -> list:
  """The image series under `path`: dicts with ``id`` (pass to `load_series`), ``series_uid``,
  ``temporal_position``, ``series_description``, ``series_number``, ``patient_id``, ``num_slices``.
  """
  frames, info, _ = _scan(path, force)
  return [{"id": gid, "series_uid": uid, "temporal_position": temporal, "num_slices": len(group),
           **info[uid]} for gid, (uid, temporal, group) in _groups(frames).items()]


def _check_geometry(frames: list) -> tuple:
  """Orders `frames` along the slice normal after checking them; returns (frames, gap in mm)."""
  first = frames[0]
  for f in frames[1:]:
    if f.shape != first.shape:
      raise DicomError(f.name, f"image size {f.shape} differs from {first.shape} of {first.name}")
    if np.max(np.abs(f.iop - first.iop)) > ORIENTATION_TOLERANCE:
      raise DicomError(f.name, f"ImageOrientationPatient {f.iop.tolist()} differs from "
                               f"{first.iop.tolist()} of {first.name}")
    if np.max(np.abs(f.pixel_spacing / first.pixel_spacing - 1)) > PIXEL_SPACING_TOLERANCE:
      raise DicomError(f.name, f"PixelSpacing {f.pixel_spacing.tolist()} differs from "
                               f"{first.pixel_spacing.tolist()} of {first.name}")
  positions = _positions(frames)
  order = np.argsort(positions, kind="stable")
  frames = [frames[i] for i in order]
  positions = positions[order]
  in_plane = np.array([[f.ipp @ first.iop[:3], f.ipp @ first.iop[3:]] for f in frames])
  shift_px = np.abs(in_plane - in_plane[0]) / first.pixel_spacing[::-1]
  if shift_px.max() > IN_PLANE_SHIFT_TOLERANCE:
    bad = frames[int(np.argmax(shift_px.max(axis=1)))]
    raise DicomError(bad.name, f"slice is shifted in-plane by {shift_px.max():.2f} pixels relative to "
                               f"{frames[0].name} (sheared or tilted stack)")
  if len(frames) == 1:
    return frames, None
  gaps = np.diff(positions)
  median = float(np.median(gaps))
  for i, gap in enumerate(gaps):
    a, b = frames[i].name, frames[i + 1].name
    if gap < max(1e-4, 1e-3 * median):
      raise DicomError(b, f"duplicate slice position {positions[i + 1]:.4f} mm along the normal "
                          f"(same as {a})")
    if gap > MISSING_SLICE_GAP * median:
      raise DicomError(b, f"missing slice(s): gap of {gap:.3f} mm after {a}, median gap {median:.3f} mm")
    if abs(gap - median) > SLICE_GAP_TOLERANCE * median:
      raise DicomError(b, f"non-uniform slice spacing: gap of {gap:.3f} mm after {a}, "
                          f"median gap {median:.3f} mm")
  return frames, median


def _decoded_pixels(file: str, force: bool) -> np.ndarray:
  """Stored pixel values of `file`: `[rows, cols]` or `[frames, rows, cols]`, MONOCHROME2 sense."""
  try:
    ds = pydicom.dcmread(file, force=force)
  except Exception as e:  # pylint: disable=broad-except
    raise DicomError(file, f"cannot read DICOM file: {e}") from e
  if "PixelData" not in ds:
    raise DicomError(file, "no pixel data (PixelData (7FE0,0010) is missing)")
  syntax = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
  if syntax is not None and syntax.is_compressed:
    from pydicom.pixels import get_decoder  # pylint: disable=import-outside-toplevel
    try:
      decoder = get_decoder(syntax)
    except NotImplementedError as e:
      raise DicomError(file, f"unsupported transfer syntax {syntax.name} ({syntax})") from e
    if not decoder.is_available:
      raise DicomError(file, f"pixel data is compressed as {syntax.name} ({syntax}) and no decoder "
                             f"is installed; install one of: {'; '.join(decoder.missing_dependencies)} "
                             "(e.g. pip install 'mrixai-jax[dicom-codecs]')")
  if int(ds.get("SamplesPerPixel", 1)) != 1:
    raise DicomError(file, f"not a grayscale image (SamplesPerPixel {ds.SamplesPerPixel})")
  photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2"))
  if photometric not in ("MONOCHROME1", "MONOCHROME2"):
    raise DicomError(file, f"unsupported PhotometricInterpretation {photometric}")
  try:
    pixels = ds.pixel_array
  except Exception as e:  # pylint: disable=broad-except
    raise DicomError(file, f"cannot decode pixel data: {e}") from e
  if photometric == "MONOCHROME1":  # bright means low: invert within the stored bit range
    bits = int(ds.get("BitsStored", 16))
    signed = int(ds.get("PixelRepresentation", 0)) == 1
    pixels = (-1 - pixels.astype(np.int64)) if signed else ((1 << bits) - 1 - pixels.astype(np.int64))
  return pixels


def _read_volume(frames: list, force: bool) -> np.ndarray:
  """Rescaled pixels `[K, rows, cols]` float32 of `frames`, in their order."""
  volume = np.empty((len(frames),) + frames[0].shape, np.float32)
  cache_file, cache = None, None
  for k, f in enumerate(frames):
    if f.file != cache_file:
      cache_file, cache = f.file, _decoded_pixels(f.file, force)
    pixels = cache if f.frame < 0 else cache[f.frame] if cache.ndim == 3 else None
    if pixels is None or pixels.shape != f.shape:
      raise DicomError(f.name, f"decoded pixel array has shape {np.shape(cache)}, header says {f.shape}")
    volume[k] = pixels.astype(np.float64) * f.slope + f.intercept
  return volume


def _source_affine(frames: list, gap) -> np.ndarray:
  """Index (slice, row, column) -> LPS mm affine of the sorted stack."""
  first = frames[0]
  row_dir, col_dir = first.iop[:3], first.iop[3:]
  affine = np.eye(4)
  affine[:3, 0] = first.normal * (gap or first.thickness or 1.0)
  affine[:3, 1] = col_dir * first.pixel_spacing[0]
  affine[:3, 2] = row_dir * first.pixel_spacing[1]
  affine[:3, 3] = first.ipp
  return affine


def _plane(normal: np.ndarray) -> str:
  return ("sagittal", "coronal", "axial")[int(np.argmax(np.abs(normal)))]


def load_series(path: str, series: str = None, force: bool = False) -> tuple:
  """Reads one MR series under `path` (a folder, searched recursively, or one file).

  Args:
    path: folder or file.
    series: an id from `list_series` or a SeriesInstanceUID; needed when `path` holds several.
    force: read files without the DICOM preamble.

  Returns:
    `(volume, meta)`: volume `[Z, Y, X]` float32 (rescaled values, canonical axial layout) and meta
    with ``spacing`` (dz, dy, dx) mm, ``affine`` [4,4] index (z, y, x) -> LPS mm, ``orientation``
    (source ImageOrientationPatient), ``plane``, ``series_description``, ``series_uid``, ``id``,
    ``temporal_position``, ``patient_id``, ``study_uid``, ``series_number``, ``manufacturer``,
    ``files`` (source slices, ordered along the slice normal), ``reorientation`` and ``skipped``.

  Raises:
    DicomError: naming the file and the problem.
  """
  frames, info, skipped = _scan(path, force)
  groups = _groups(frames)
  if not groups:
    notes = "; ".join(f"{os.path.basename(f)}: {r}" for f, r in skipped[:5])
    raise DicomError(path, f"no MR image series found{' (skipped ' + notes + ')' if notes else ''}")
  if series is None:
    if len(groups) > 1:
      listing = "; ".join(f"{gid} ({info[uid]['series_description']!r}, {len(g)} slices)"
                          for gid, (uid, _, g) in groups.items())
      raise DicomError(path, f"{len(groups)} image series; pass series= one of: {listing}")
    series = next(iter(groups))
  matches = [gid for gid, (uid, _, _) in groups.items() if series in (gid, uid)]
  if len(matches) != 1:
    reason = "is not" if not matches else "matches several temporal positions; use an id"
    raise DicomError(path, f"series {series!r} {reason} among: {', '.join(groups)}")
  uid, temporal, group = groups[matches[0]]
  group, gap = _check_geometry(group)
  stack = _read_volume(group, force)
  volume, affine, transform = orientation.to_canonical(stack, _source_affine(group, gap))
  meta = dict(info[uid])
  meta.update({
      "id": matches[0], "series_uid": uid, "temporal_position": temporal,
      "spacing": orientation.spacing(affine), "affine": affine,
      "orientation": group[0].iop.tolist(), "plane": _plane(group[0].normal),
      "files": [f.name for f in group], "reorientation": transform, "skipped": skipped,
      "slice_gap": gap,  # None for a single slice (spacing then uses SliceThickness, else 1 mm)
  })
  return volume, meta
