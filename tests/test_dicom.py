"""DICOM series reader: synthetic series from pydicom's MR_small.dcm, bundled files, bad inputs."""

import copy
import os
import shutil

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid

from mrixai_jax.data import dicom
from mrixai_jax.data.dicom import DicomError
from tests import fake_duke

SIZE, DZ, SPACING = fake_duke.SIZE, fake_duke.DZ, fake_duke.SPACING
X0, Y0, Z0 = fake_duke.X0, fake_duke.Y0, fake_duke.Z0
_testfile = fake_duke.testfile
_write_series = fake_duke.write_series


@pytest.fixture(scope="module")
def base():
  return fake_duke.base_dataset()


def _pixels(seed, n):
  return np.random.default_rng(seed).integers(0, 3000, size=(n, SIZE, SIZE)).astype(np.int16)


def test_shuffled_names_read_back_exactly(base, tmp_path):
  pixels = _pixels(1, 7)
  paths = _write_series(base, tmp_path, pixels, seed=3)
  assert sorted(paths) != paths  # file-name order is not slice order
  volume, meta = dicom.load_series(str(tmp_path))
  np.testing.assert_array_equal(volume, pixels.astype(np.float32))
  assert volume.dtype == np.float32
  np.testing.assert_allclose(meta["spacing"], (DZ, SPACING, SPACING))
  np.testing.assert_allclose(meta["affine"][:3, 3], (X0, Y0, Z0))
  assert meta["plane"] == "axial" and meta["series_description"] == "ax dyn pre"
  assert meta["files"] == paths and meta["skipped"] == []


def test_flipped_row_direction_is_reoriented(base, tmp_path):
  pixels = _pixels(2, 5)
  _write_series(base, tmp_path, pixels, flip_rows=True)
  volume, meta = dicom.load_series(str(tmp_path))
  # IOP row direction -x: columns are mirrored and the normal points inferior; both undone.
  np.testing.assert_array_equal(volume, pixels.astype(np.float32))
  # Columns of the affine: z -> +S, y -> +P, x -> +L (LPS rows).
  np.testing.assert_allclose(meta["affine"][:3, :3], [[0, 0, SPACING], [0, SPACING, 0], [DZ, 0, 0]],
                             atol=1e-9)
  np.testing.assert_allclose(meta["affine"][:3, 3], (X0, Y0, Z0), atol=1e-9)
  assert meta["reorientation"]["flip"] == (0, 2)


def test_rescale_slope_intercept_applied(base, tmp_path):
  pixels = _pixels(3, 4)
  _write_series(base, tmp_path, pixels, slope=2.5, intercept=-100.0)
  volume, _ = dicom.load_series(str(tmp_path))
  np.testing.assert_allclose(volume, pixels * 2.5 - 100.0, rtol=1e-6)


def test_two_series_in_one_folder(base, tmp_path):
  a, b = _pixels(4, 4), _pixels(5, 6)
  uid_a, uid_b = generate_uid(), generate_uid()
  _write_series(base, tmp_path, a, uid=uid_a, description="ax dyn pre", seed=1)
  _write_series(base, tmp_path, b, uid=uid_b, description="ax dyn 1st pass", seed=2)
  listing = {s["series_uid"]: s for s in dicom.list_series(str(tmp_path))}
  assert {listing[uid_a]["num_slices"], listing[uid_b]["num_slices"]} == {4, 6}
  with pytest.raises(DicomError, match="2 image series.*pass series="):
    dicom.load_series(str(tmp_path))
  np.testing.assert_array_equal(dicom.load_series(str(tmp_path), series=uid_a)[0], a)
  volume, meta = dicom.load_series(str(tmp_path), series=uid_b)
  np.testing.assert_array_equal(volume, b)
  assert meta["series_description"] == "ax dyn 1st pass"


def test_two_time_points_in_one_series(base, tmp_path):
  uid = generate_uid()
  first, second = _pixels(6, 3), _pixels(7, 3)
  _write_series(base, tmp_path, first, uid=uid, temporal=1, seed=4)
  _write_series(base, tmp_path, second, uid=uid, temporal=2, seed=5)
  ids = sorted(s["id"] for s in dicom.list_series(str(tmp_path)))
  assert ids == [f"{uid}#t1", f"{uid}#t2"]
  volume, meta = dicom.load_series(str(tmp_path), series=f"{uid}#t2")
  np.testing.assert_array_equal(volume, second)
  assert meta["temporal_position"] == "2"


def test_repeated_positions_split_by_acquisition_number(base, tmp_path):
  uid = generate_uid()
  first, second = _pixels(16, 4), _pixels(17, 4)
  for number, pixels in ((1, first), (2, second)):
    for path in _write_series(base, tmp_path / f"a{number}", pixels, uid=uid, seed=number):
      ds = pydicom.dcmread(path)
      ds.AcquisitionNumber = number
      ds.save_as(path)
  assert sorted(s["id"] for s in dicom.list_series(str(tmp_path))) == [f"{uid}#t1", f"{uid}#t2"]
  np.testing.assert_array_equal(dicom.load_series(str(tmp_path), series=f"{uid}#t2")[0], second)


def test_monochrome1_is_inverted(base, tmp_path):
  pixels = _pixels(18, 3)
  for path in _write_series(base, tmp_path, pixels):
    ds = pydicom.dcmread(path)
    ds.PhotometricInterpretation = "MONOCHROME1"
    ds.save_as(path)
  volume, _ = dicom.load_series(str(tmp_path))
  np.testing.assert_array_equal(volume, -1.0 - pixels)  # signed int16: bright <-> dark


def _enhanced_multiframe(base, pixels, path):
  """An Enhanced-MR-like multi-frame file with per-frame geometry, frames stored top to bottom."""
  ds = copy.deepcopy(base)
  order = np.arange(len(pixels))[::-1]
  ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.4.1"
  ds.NumberOfFrames = len(pixels)
  ds.PixelData = np.ascontiguousarray(pixels[order]).astype("<i2").tobytes()
  for keyword in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing"):
    delattr(ds, keyword)
  shared, orient, measures = Dataset(), Dataset(), Dataset()
  orient.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
  measures.PixelSpacing, measures.SliceThickness = [SPACING, SPACING], DZ
  shared.PlaneOrientationSequence, shared.PixelMeasuresSequence = Sequence([orient]), Sequence([measures])
  ds.SharedFunctionalGroupsSequence = Sequence([shared])
  frames = []
  for k in order:
    group, position, rescale = Dataset(), Dataset(), Dataset()
    position.ImagePositionPatient = [X0, Y0, Z0 + k * DZ]
    rescale.RescaleSlope, rescale.RescaleIntercept, rescale.RescaleType = 2, 1, "US"
    group.PlanePositionSequence, group.PixelValueTransformationSequence = (
        Sequence([position]), Sequence([rescale]))
    frames.append(group)
  ds.PerFrameFunctionalGroupsSequence = Sequence(frames)
  ds.save_as(path, enforce_file_format=True)


def test_multiframe_file(base, tmp_path):
  pixels = _pixels(8, 5)
  path = str(tmp_path / "enhanced.dcm")
  _enhanced_multiframe(base, pixels, path)
  volume, meta = dicom.load_series(path)
  np.testing.assert_array_equal(volume, pixels * 2.0 + 1.0)
  np.testing.assert_allclose(meta["spacing"], (DZ, SPACING, SPACING))
  assert meta["files"][0] == f"{path} (frame 5)"


@pytest.mark.filterwarnings("ignore:The pixel data is .* excess padding")  # MR_small_padded.dcm
@pytest.mark.parametrize("name", ["MR_small.dcm", "MR_small_implicit.dcm", "MR_small_bigendian.dcm",
                                  "MR_small_padded.dcm", "MR_small_RLE.dcm",
                                  "MR_small_jp2klossless.dcm"])
def test_bundled_mr_small_variants(base, name):
  volume, meta = dicom.load_series(_testfile(name))
  assert volume.shape == (1, SIZE, SIZE)
  np.testing.assert_array_equal(volume[0], base.pixel_array.astype(np.float32))
  assert meta["patient_id"] == str(base.PatientID)


def test_bundled_non_square_image():
  path = _testfile("examples_overlay.dcm")
  volume, meta = dicom.load_series(path)
  assert volume.shape == (1, 300, 484)
  np.testing.assert_array_equal(volume[0], pydicom.dcmread(path).pixel_array)
  np.testing.assert_allclose(meta["spacing"][1:], (0.72314049586777,) * 2)


def test_bundled_enhanced_multiframe_without_geometry_is_refused():
  """pydicom-data's emri_small.dcm has 10 frames but no functional groups: no slice can be placed."""
  path = get_testdata_file("emri_small.dcm", download=False)
  if path is None:
    pytest.skip("pydicom-data (test extra) is not installed")
  _expect_error(path, "lacks per-frame geometry", "emri_small.dcm")


# ------------------------------------------------------------------------ bad input


def _expect_error(path, fragment, name, **kwargs):
  with pytest.raises(DicomError) as info:
    dicom.load_series(str(path), **kwargs)
  assert fragment in info.value.reason, info.value
  assert name in str(info.value), info.value


def test_truncated_pixel_data(tmp_path):
  path = shutil.copy(_testfile("MR_truncated.dcm"), tmp_path / "cut.dcm")
  _expect_error(path, "cannot decode pixel data", "cut.dcm")


def test_missing_pixel_data(base, tmp_path):
  paths = _write_series(base, tmp_path, _pixels(9, 3))
  ds = pydicom.dcmread(paths[1])
  del ds.PixelData
  ds.save_as(paths[1])
  _expect_error(tmp_path, "no pixel data", os.path.basename(paths[1]))


def test_compressed_without_decoder(tmp_path):
  from pydicom.pixels import get_decoder
  path = shutil.copy(_testfile("MR_small_jpeg_ls_lossless.dcm"), tmp_path / "jls.dcm")
  if get_decoder("1.2.840.10008.1.2.4.80").is_available:  # dicom-codecs extra installed
    volume, _ = dicom.load_series(str(path))
    np.testing.assert_array_equal(volume[0], pydicom.dcmread(_testfile("MR_small.dcm")).pixel_array)
  else:
    _expect_error(path, "no decoder is installed", "jls.dcm")


@pytest.mark.parametrize("change, fragment", [
    (lambda ds: setattr(ds, "PixelSpacing", [0.4, 0.4]), "PixelSpacing"),
    (lambda ds: setattr(ds, "ImageOrientationPatient", [1, 0, 0, 0, 0.8, 0.6]), "ImageOrientationPatient"),
    (lambda ds: (setattr(ds, "Rows", 32), setattr(ds, "PixelData", ds.PixelData[:32 * 64 * 2])),
     "image size"),
    (lambda ds: delattr(ds, "ImagePositionPatient"), "ImagePositionPatient"),
    (lambda ds: setattr(ds, "ImagePositionPatient", [X0 + 3.0, Y0, Z0 + 2 * DZ]), "shifted in-plane"),
    (lambda ds: setattr(ds, "ImagePositionPatient", [X0, Y0, Z0 + 2 * DZ + 0.3]), "non-uniform"),
])
def test_inconsistent_slice(base, tmp_path, change, fragment):
  paths = _write_series(base, tmp_path, _pixels(10, 5))
  ds = pydicom.dcmread(paths[2])
  change(ds)
  ds.save_as(paths[2])
  _expect_error(tmp_path, fragment, os.path.basename(paths[2]))


def test_duplicate_positions(base, tmp_path):
  paths = _write_series(base, tmp_path, _pixels(11, 4))
  ds = pydicom.dcmread(paths[3])
  ds.ImagePositionPatient = [X0, Y0, Z0 + 2 * DZ]
  ds.save_as(paths[3])
  with pytest.raises(DicomError, match="duplicate slice position") as info:
    dicom.load_series(str(tmp_path))
  assert os.path.basename(paths[2]) in str(info.value) and os.path.basename(paths[3]) in str(info.value)


def test_missing_slice(base, tmp_path):
  paths = _write_series(base, tmp_path, _pixels(12, 6))
  os.remove(paths[3])
  _expect_error(tmp_path, "missing slice", os.path.basename(paths[4]))


def test_non_image_objects_and_stray_files_are_skipped_with_a_note(base, tmp_path):
  pixels = _pixels(13, 3)
  _write_series(base, tmp_path, pixels)
  seg = copy.deepcopy(base)
  seg.Modality, seg.SOPInstanceUID, seg.SeriesInstanceUID = "SEG", generate_uid(), generate_uid()
  seg.save_as(tmp_path / "segmentation.dcm", enforce_file_format=True)
  (tmp_path / "notes.txt").write_text("not dicom")
  volume, meta = dicom.load_series(str(tmp_path))
  np.testing.assert_array_equal(volume, pixels)
  reasons = {os.path.basename(f): r for f, r in meta["skipped"]}
  assert "Modality 'SEG'" in reasons["segmentation.dcm"] and "not a DICOM file" in reasons["notes.txt"]


def test_empty_string_numeric_tags_are_tolerated(base, tmp_path):
  paths = _write_series(base, tmp_path, _pixels(14, 3))
  for path in paths:
    ds = pydicom.dcmread(path)
    ds.SliceThickness = ""
    ds.RescaleSlope = ""
    ds.save_as(path)
  volume, _ = dicom.load_series(str(tmp_path))
  np.testing.assert_array_equal(volume, _pixels(14, 3))


def test_empty_folder_and_unknown_series(base, tmp_path):
  _expect_error(tmp_path, "no MR image series", str(tmp_path))
  _write_series(base, tmp_path / "s", _pixels(15, 2))
  _expect_error(tmp_path, "is not among", str(tmp_path), series="1.2.3")
  _expect_error(tmp_path / "nowhere", "no such file", "nowhere")


def test_error_is_a_value_error():
  assert issubclass(DicomError, ValueError)


# ------------------------------------------------------------------------ reorientation


def test_to_canonical_preserves_world_positions():
  from mrixai_jax.data import orientation
  rng = np.random.default_rng(21)
  for _ in range(10):
    volume = rng.normal(size=(3, 4, 5))
    perm = rng.permutation(3)
    signs = rng.choice([-1.0, 1.0], size=3)
    affine = np.eye(4)
    affine[:3, :3] = np.eye(3)[:, perm] * signs * rng.uniform(0.5, 3.0, size=3)
    affine[:3, :3] += rng.normal(scale=0.05, size=(3, 3))  # slightly oblique
    affine[:3, 3] = rng.normal(scale=50, size=3)
    out, new_affine, transform = orientation.to_canonical(volume, affine)
    rotation = new_affine[:3, :3]
    assert np.all(np.diag(rotation[[2, 1, 0]]) > 0)  # z -> +S, y -> +P, x -> +L
    for index in np.ndindex(out.shape):  # each output voxel sits where its value was
      world = new_affine @ np.array([*index, 1.0])
      source = np.linalg.solve(affine, world)[:3]
      np.testing.assert_allclose(source, np.round(source), atol=1e-9)
      assert out[index] == volume[tuple(np.round(source).astype(int))]
    np.testing.assert_array_equal(orientation.apply_transform(volume, transform), out)


def test_sagittal_series_is_resliced_to_the_canonical_layout(base, tmp_path):
  pixels = _pixels(19, 4)
  paths = _write_series(base, tmp_path, pixels)
  for k, path in enumerate(paths):  # rows run posterior, columns run inferior; slices along +x
    ds = pydicom.dcmread(path)
    ds.ImageOrientationPatient = [0, 1, 0, 0, 0, -1]
    ds.ImagePositionPatient = [X0 + k * DZ, Y0, Z0]
    ds.save_as(path)
  volume, meta = dicom.load_series(str(tmp_path))
  assert meta["plane"] == "sagittal" and volume.shape == (SIZE, SIZE, 4)
  # Source (slice k, row i, column j) sits at x = X0 + k DZ, y = Y0 + j s, z = Z0 - i s; canonical
  # [z up, y, x] therefore holds pixels[k, i, j] at (SIZE - 1 - i, j, k).
  np.testing.assert_array_equal(volume, np.transpose(pixels, (1, 2, 0))[::-1])
