"""Duke .seg.nrrd masks (standard, swapped, layered, other storage orders) and PNG/NPY label maps."""

import nrrd
import numpy as np
import pytest
from PIL import Image

from mrixai_jax.data import masks
from mrixai_jax.data.masks import MaskError

SHAPE = (6, 20, 24)  # canonical [Z, Y, X]
SPACING = np.array([2.0, 0.7, 0.7])  # z, y, x in mm
ORIGIN = np.array([-100.0, -120.0, 30.0])  # LPS mm of voxel (0, 0, 0)


def _affine():
  """Canonical image affine: z -> +S, y -> +P, x -> +L."""
  a = np.eye(4)
  a[:3, :3] = [[0, 0, SPACING[2]], [0, SPACING[1], 0], [SPACING[0], 0, 0]]
  a[:3, 3] = ORIGIN
  return a


@pytest.fixture()
def tissues():
  """Random nested masks on the canonical grid: breast ⊃ FGT, vessels (vessels touch FGT a little)."""
  rng = np.random.default_rng(7)
  z, y, x = np.indices(SHAPE)
  breast = (((y - 10) / 8.0) ** 2 + ((x - 12) / 10.0) ** 2 < 1) & (rng.random(SHAPE) < 0.97)
  fgt = breast & (rng.random(SHAPE) < 0.3)
  vessels = breast & (rng.random(SHAPE) < 0.08)
  return {"breast": breast, "fgt": fgt, "vessels": vessels}


def _expected(t):
  labels = np.zeros(SHAPE, np.uint8)
  labels[t["breast"]] = 1
  labels[t["vessels"]] = 3
  labels[t["fgt"]] = 2  # FGT wins on overlap
  return labels


def _to_nrrd_axes(volume):
  """Canonical [Z, Y, X] -> Slicer's [x, y, z] index order (LPS directions +x, +y, +z)."""
  return np.ascontiguousarray(volume.transpose(2, 1, 0))


def _header(segments, space="left-posterior-superior", directions=None, origin=None, ndim=3):
  dirs = np.diag(SPACING[::-1]) if directions is None else np.asarray(directions, float)
  if ndim == 4:
    dirs = np.vstack([np.full((1, 3), np.nan), dirs])
  header = {"space": space, "space directions": dirs,
            "space origin": ORIGIN if origin is None else np.asarray(origin, float)}
  if ndim == 4:
    header["kinds"] = ["list", "domain", "domain", "domain"]
  for i, (name, value, layer) in enumerate(segments):
    header[f"Segment{i}_Name"] = name
    header[f"Segment{i}_LabelValue"] = str(value)
    header[f"Segment{i}_Layer"] = str(layer)
  return header


def _write_breast(path, t, **kwargs):
  nrrd.write(str(path), _to_nrrd_axes(t["breast"].astype(np.uint8)), _header([("Breast", 1, 0)], **kwargs))


def _dense_vessels_3d(t, fgt_value, vessel_value):
  """A single label volume (where they overlap, FGT is written, as Lew et al. resolve it)."""
  data = np.zeros(SHAPE, np.uint8)
  data[t["vessels"]] = vessel_value
  data[t["fgt"]] = fgt_value
  return data


def _check(tmp_path, t, dv_data, dv_header, breast_kwargs=None):
  _write_breast(tmp_path / "b.seg.nrrd", t, **(breast_kwargs or {}))
  nrrd.write(str(tmp_path / "dv.seg.nrrd"), dv_data, dv_header)
  labels = masks.duke_label_map(str(tmp_path / "b.seg.nrrd"), str(tmp_path / "dv.seg.nrrd"),
                                SHAPE, _affine())
  np.testing.assert_array_equal(labels, _expected(t))
  return labels


def test_standard_dense_and_vessels(tmp_path, tissues):
  data = _to_nrrd_axes(_dense_vessels_3d(tissues, fgt_value=2, vessel_value=1))
  labels = _check(tmp_path, tissues, data, _header([("Vessels", 1, 0), ("Dense", 2, 0)]))
  assert set(np.unique(labels).tolist()) == {0, 1, 2, 3}


def test_swapped_label_values_give_the_same_map(tmp_path, tissues):
  data = _to_nrrd_axes(_dense_vessels_3d(tissues, fgt_value=1, vessel_value=2))
  _check(tmp_path, tissues, data, _header([("Dense", 1, 0), ("Vessels", 2, 0)]))


def test_layered_4d_file_with_overlap(tmp_path, tissues):
  layers = np.stack([_to_nrrd_axes(tissues["fgt"].astype(np.uint8)),
                     _to_nrrd_axes(tissues["vessels"].astype(np.uint8) * 3)])
  assert (tissues["fgt"] & tissues["vessels"]).any()  # genuine overlap across layers
  _check(tmp_path, tissues, layers, _header([("Dense", 1, 0), ("Vessels", 3, 1)], ndim=4))


def test_no_segment_keys_use_duke_canonical_values(tmp_path, tissues):
  data = _to_nrrd_axes(_dense_vessels_3d(tissues, fgt_value=2, vessel_value=1))
  _check(tmp_path, tissues, data, _header([]))


def test_other_storage_orders_and_spaces_are_aligned_by_geometry(tmp_path, tissues):
  # Stored with x reversed, described in RAS; and a breast file cropped to its extent.
  data = _to_nrrd_axes(_dense_vessels_3d(tissues, fgt_value=2, vessel_value=1))[::-1]
  far_x = ORIGIN[0] + (SHAPE[2] - 1) * SPACING[2]
  ras_dirs = np.diag([SPACING[2], -SPACING[1], SPACING[0]])  # LPS (-x, +y, +z) written in RAS
  ras_origin = [-far_x, -ORIGIN[1], ORIGIN[2]]
  header = _header([("Vessels", 1, 0), ("Dense", 2, 0)], space="right-anterior-superior",
                   directions=ras_dirs, origin=ras_origin)
  zs, ys, xs = np.nonzero(tissues["breast"])
  box = (slice(zs.min(), zs.max() + 1), slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
  cropped = {"breast": np.zeros(SHAPE, bool)}
  cropped["breast"][box] = tissues["breast"][box]
  crop_origin = ORIGIN + np.array([xs.min(), ys.min(), zs.min()]) * SPACING[::-1]
  _write_breast(tmp_path / "b.seg.nrrd", {"breast": tissues["breast"][box]}, origin=crop_origin)
  nrrd.write(str(tmp_path / "dv.seg.nrrd"), np.ascontiguousarray(data), header)
  labels = masks.duke_label_map(str(tmp_path / "b.seg.nrrd"), str(tmp_path / "dv.seg.nrrd"),
                                SHAPE, _affine())
  np.testing.assert_array_equal(labels, _expected(tissues))


def test_misaligned_grid_is_an_error(tmp_path, tissues):
  _write_breast(tmp_path / "b.seg.nrrd", tissues, directions=np.diag([0.8, 0.7, 2.0]))
  nrrd.write(str(tmp_path / "dv.seg.nrrd"), _to_nrrd_axes(_dense_vessels_3d(tissues, 2, 1)),
             _header([("Vessels", 1, 0), ("Dense", 2, 0)]))
  with pytest.raises(MaskError, match="b.seg.nrrd.*does not match the image grid"):
    masks.duke_label_map(str(tmp_path / "b.seg.nrrd"), str(tmp_path / "dv.seg.nrrd"), SHAPE, _affine())


@pytest.mark.parametrize("segments, data_value, fragment", [
    ([("Vessels", 1, 0), ("Dense", 2, 0)], 5, "values [5] that no segment declares"),
    ([("Tumour", 1, 0), ("Dense", 2, 0)], 1, "segment name 'Tumour'"),
    ([("Vessels", 1, 2), ("Dense", 2, 0)], 1, "on layer 2"),
])
def test_bad_segment_files(tmp_path, tissues, segments, data_value, fragment):
  _write_breast(tmp_path / "b.seg.nrrd", tissues)
  data = _to_nrrd_axes(tissues["fgt"].astype(np.uint8) * data_value)
  nrrd.write(str(tmp_path / "dv.seg.nrrd"), data, _header(segments))
  with pytest.raises(MaskError, match="dv.seg.nrrd") as info:
    masks.duke_label_map(str(tmp_path / "b.seg.nrrd"), str(tmp_path / "dv.seg.nrrd"), SHAPE, _affine())
  assert fragment in info.value.reason


def test_duke_mask_paths(tmp_path):
  folder = tmp_path / "Breast_MRI_002"
  folder.mkdir()
  (folder / "Segmentation_Breast_MRI_002_Breast.seg.nrrd").write_bytes(b"")
  with pytest.raises(MaskError, match="Dense_and_Vessels.seg.nrrd: segmentation file not found"):
    masks.duke_mask_paths(str(tmp_path), "Breast_MRI_002")
  (folder / "Segmentation_Breast_MRI_002_Dense_and_Vessels.seg.nrrd").write_bytes(b"")
  assert masks.duke_mask_paths(str(tmp_path), "Breast_MRI_002")[0].endswith("_Breast.seg.nrrd")


def test_png_and_npy_label_maps(tmp_path):
  labels = np.random.default_rng(3).integers(0, 4, size=(12, 10)).astype(np.uint8)
  Image.fromarray(labels, mode="L").save(tmp_path / "m.png")
  np.save(tmp_path / "m.npy", labels.astype(np.int64))
  np.testing.assert_array_equal(masks.read_label_map(str(tmp_path / "m.png"), shape=(12, 10)), labels)
  out = masks.read_label_map(str(tmp_path / "m.npy"))
  assert out.dtype == np.uint8
  np.testing.assert_array_equal(out, labels)


@pytest.mark.parametrize("name, array, fragment", [
    ("rgb.png", np.zeros((8, 8, 3), np.uint8), "PNG mode RGB"),
    ("big.png", np.full((8, 8), 7, np.uint8), "label values [7] outside 0..3"),
    ("half.npy", np.full((8, 8), 1.5), "non-integer"),
    ("vol.npy", np.zeros((2, 8, 8), np.uint8), "must be 2-D"),
    ("size.npy", np.zeros((8, 9), np.uint8), "is 8x9, image is 8x8"),
    ("m.tif", np.zeros((8, 8), np.uint8), "unsupported label map format"),
])
def test_bad_label_maps(tmp_path, name, array, fragment):
  path = tmp_path / name
  if name.endswith(".png"):
    Image.fromarray(array).save(path)
  elif name.endswith(".npy"):
    np.save(path, array)
  else:
    path.write_bytes(b"II*\x00")
  with pytest.raises(MaskError, match=name) as info:
    masks.read_label_map(str(path), shape=(8, 8))
  assert fragment in info.value.reason


def test_permuted_axis_order_is_aligned_by_geometry(tmp_path, tissues):
  # Stored as [z, x, y] (canonical axes 0, 2, 1) with matching space directions.
  data = np.ascontiguousarray(_dense_vessels_3d(tissues, 2, 1).transpose(0, 2, 1))
  directions = np.array([[0, 0, SPACING[0]], [SPACING[2], 0, 0], [0, SPACING[1], 0]])
  _check(tmp_path, tissues, data, _header([("Vessels", 1, 0), ("Dense", 2, 0)], directions=directions))


def test_mask_outside_the_volume_is_an_error(tmp_path, tissues):
  far = ORIGIN + np.array([0.0, 0.0, 100 * SPACING[0]])  # 100 slices above the image
  _write_breast(tmp_path / "b.seg.nrrd", tissues, origin=far)
  nrrd.write(str(tmp_path / "dv.seg.nrrd"), _to_nrrd_axes(_dense_vessels_3d(tissues, 2, 1)),
             _header([("Vessels", 1, 0), ("Dense", 2, 0)]))
  with pytest.raises(MaskError, match="b.seg.nrrd: mask does not overlap"):
    masks.duke_label_map(str(tmp_path / "b.seg.nrrd"), str(tmp_path / "dv.seg.nrrd"), SHAPE, _affine())
