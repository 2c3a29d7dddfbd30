"""Test helpers: synthetic DICOM series (copies of pydicom's MR_small.dcm) and Duke-like trees."""

import copy
import os

import nrrd
import numpy as np
import pydicom
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from mrixai_jax.data import phantom, preprocess

SIZE = 64  # MR_small.dcm is 64 x 64 int16
DZ = 2.5
X0, Y0, Z0 = -83.9063, -91.2, 6.6406
SPACING = 0.3125


def testfile(name):
  path = get_testdata_file(name, download=False)
  assert path is not None, f"pydicom's bundled {name} is missing"
  return path


def base_dataset():
  return pydicom.dcmread(testfile("MR_small.dcm"))


def write_series(base, folder, pixels, uid=None, flip_rows=False, description="ax dyn pre",
                 temporal=None, slope=None, intercept=None, seed=0, patient_id=None, series_number=None):
  """Writes `pixels [K, 64, 64]` int16 (slice k at z = Z0 + k * DZ, axial, LPS) one file per slice
  with shuffled file names; returns the paths in slice order."""
  os.makedirs(folder, exist_ok=True)
  uid = uid or generate_uid()
  names = np.random.default_rng(seed).permutation(len(pixels))
  paths = []
  for k, image in enumerate(pixels):
    ds = copy.deepcopy(base)
    stored = image[:, ::-1] if flip_rows else image
    ds.PixelData = np.ascontiguousarray(stored).astype("<i2").tobytes()
    x = X0 + (SIZE - 1) * SPACING if flip_rows else X0
    ds.ImageOrientationPatient = [-1 if flip_rows else 1, 0, 0, 0, 1, 0]
    ds.ImagePositionPatient = [x, Y0, Z0 + k * DZ]
    ds.InstanceNumber = int(names[k]) + 1
    ds.SOPInstanceUID = generate_uid()
    ds.SeriesInstanceUID = uid
    ds.SeriesDescription = description
    if patient_id is not None:
      ds.PatientID = patient_id
    if series_number is not None:
      ds.SeriesNumber = series_number
    if temporal is not None:
      ds.TemporalPositionIdentifier = temporal
    if slope is not None:
      ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
    path = os.path.join(folder, f"IM{names[k]:04d}_{uid[-6:]}{temporal or ''}.dcm")
    ds.save_as(path, enforce_file_format=True)
    paths.append(path)
  return paths


def _write_seg(path, volume, segments):
  """Canonical `[Z, Y, X]` uint8 volume as a Slicer-style .seg.nrrd on the write_series grid."""
  header = {"space": "left-posterior-superior", "space directions": np.diag([SPACING, SPACING, DZ]),
            "space origin": np.array([X0, Y0, Z0])}
  for i, (name, value) in enumerate(segments):
    header[f"Segment{i}_Name"], header[f"Segment{i}_LabelValue"] = name, str(value)
    header[f"Segment{i}_Layer"] = "0"
  os.makedirs(os.path.dirname(path), exist_ok=True)
  nrrd.write(path, np.ascontiguousarray(volume.transpose(2, 1, 0)), header)


def write_duke_patient(root, number, num_slices=6, seed=0):
  """A Duke-like patient under `root`: pre, post and T1 series (classic NBIA layout) and its two
  segmentation files. Returns `(patient_id, pre-contrast pixels [Z, 64, 64], labels [Z, 64, 64])`."""
  pid = f"Breast_MRI_{number:03d}"
  data = phantom.generate(num_slices, SIZE, seed + number, slices_per_patient=num_slices)
  labels = data["labels"]
  pixels = ((data["image"][..., 0] + 1.0) * 1000.0).astype(np.int16)
  base = base_dataset()
  study = os.path.join(root, "Duke-Breast-Cancer-MRI", pid, f"1.3.6.1.4.1.14519.{number}")
  enhanced = (pixels + 900 * (labels >= 2)).astype(np.int16)  # contrast uptake in FGT and vessels
  inverted = (2000 - pixels).astype(np.int16)  # any other contrast; the normalisation cannot undo it
  series = (("ax dyn pre", pixels, 3), ("ax dyn 1st pass", enhanced, 4), ("ax t1", inverted, 2))
  for i, (description, values, series_number) in enumerate(series):
    write_series(base, os.path.join(study, f"series{i}"), values, description=description,
                 seed=number + i, patient_id=pid, series_number=series_number)
  masks = os.path.join(root, "Segmentation_Masks_NRRD", pid)
  _write_seg(os.path.join(masks, f"Segmentation_{pid}_Breast.seg.nrrd"), (labels > 0).astype(np.uint8),
             [("Breast", 1)])
  dense_vessels = np.where(labels == 2, 2, np.where(labels == 3, 1, 0)).astype(np.uint8)
  _write_seg(os.path.join(masks, f"Segmentation_{pid}_Dense_and_Vessels.seg.nrrd"), dense_vessels,
             [("Vessels", 1), ("Dense", 2)])
  return pid, pixels, labels


def assert_split_matches_volume(data: dict, pixels, labels, cfg) -> None:
  """A loaded split holds exactly the slices `preprocess.prepare_slices` makes of one written
  patient (`pixels`, `labels` from `write_duke_patient`; `cfg`: the data config it was built with)."""
  expected = preprocess.prepare_slices(pixels.astype(np.float32), labels, cfg.image_size, cfg.clip_percentiles,
                                       cfg.min_breast_fraction)
  assert len(expected["slice_index"]) >= 3
  np.testing.assert_array_equal(data["slice_index"], expected["slice_index"])
  np.testing.assert_array_equal(data["labels"], expected["labels"])
  np.testing.assert_allclose(data["image"], expected["image"], atol=1e-6)
