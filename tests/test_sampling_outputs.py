"""Sampling outputs: mask-folder validation, mask selection from a split, DICOM round trip, figures."""

import numpy as np
import pydicom
import pytest
from PIL import Image

from configs import demo
from mrixai_jax import generate
from mrixai_jax.data import synthetic_dicom
from mrixai_jax.errors import UserError
from mrixai_jax.report import figures

SIZE = 16


def _labels(rng, n=1):
  return rng.integers(0, 4, size=(n, SIZE, SIZE)).astype(np.uint8)


def test_mask_folder_reads_png_and_npy_sorted(tmp_path):
  rng = np.random.default_rng(0)
  a, b = _labels(rng, 2)
  Image.fromarray(a).save(tmp_path / "b.png")
  np.save(tmp_path / "a.npy", b.astype(np.int64))
  (tmp_path / "notes.txt").write_text("ignored")
  maps, names = generate.load_mask_folder(tmp_path, SIZE)
  assert names == ["a.npy", "b.png"] and maps.dtype == np.uint8
  np.testing.assert_array_equal(maps, np.stack([b, a]))


@pytest.mark.parametrize("make,problem", [
    (lambda p: np.save(p / "m.npy", np.zeros((SIZE, SIZE + 1), np.uint8)), r"m\.npy: label map is 16x17"),
    (lambda p: np.save(p / "m.npy", np.full((SIZE, SIZE), 7, np.uint8)), r"m\.npy: label values \[7\] outside"),
    (lambda p: np.save(p / "m.npy", np.full((SIZE, SIZE), 0.5, np.float32)), r"m\.npy: .*non-integer"),
    (lambda p: (p / "m.png").write_bytes(b"\x89PNG not really"), r"m\.png: cannot read PNG"),
    (lambda p: Image.fromarray(np.zeros((SIZE, SIZE, 3), np.uint8)).save(p / "m.png"), r"m\.png: PNG mode RGB"),
    (lambda p: None, "holds no"),
])
def test_bad_masks_raise_one_clear_error(tmp_path, make, problem):
  make(tmp_path)
  with pytest.raises(UserError, match=problem) as info:
    generate.load_mask_folder(tmp_path, SIZE)
  assert "\n" not in str(info.value)


def test_dataset_masks_come_with_counterparts(monkeypatch, tmp_path):
  from mrixai_jax.data import pipeline

  rng = np.random.default_rng(1)
  split = {"image": rng.uniform(-1, 1, (7, SIZE, SIZE, 1)).astype(np.float32), "labels": _labels(rng, 7),
           "patient_id": np.array([f"p{i // 3}" for i in range(7)]), "slice_index": np.arange(7, dtype=np.int32)}
  calls = []
  monkeypatch.setattr(pipeline, "load_split", lambda data, name, workdir: calls.append(name) or split)
  config = demo.get_config()
  config.sample.num_samples = 10
  masks = generate.select_masks(config, str(tmp_path))
  assert calls == [config.sample.split]
  rows = [int(s.split(":")[2]) for s in masks["mask_source"]]  # slice_index == row here
  assert sorted(rows[:7]) == list(range(7)) and rows[7:] == rows[:3]  # a permutation, then cycled
  np.testing.assert_array_equal(masks["labels"], split["labels"][rows])
  np.testing.assert_array_equal(masks["counterparts"], split["image"][rows])
  np.testing.assert_array_equal(masks["counterpart_patient_id"], split["patient_id"][rows])


def test_dicom_secondary_capture_round_trip(tmp_path):
  rng = np.random.default_rng(2)
  image = rng.uniform(-1, 1, (SIZE, SIZE + 4))
  uids = synthetic_dicom.new_series_uids()
  for i in range(2):
    synthetic_dicom.write_secondary_capture(tmp_path / f"s{i}.dcm", image, uids, instance_number=i + 1,
                                            comment="mask: m.png")
  first, second = (pydicom.dcmread(tmp_path / f"s{i}.dcm") for i in range(2))
  assert first.SOPClassUID == pydicom.uid.SecondaryCaptureImageStorage
  assert list(first.ImageType)[:1] == ["DERIVED"]
  assert "SYNTHETIC" in first.SeriesDescription and "m.png" in first.ImageComments
  assert first.SeriesInstanceUID == second.SeriesInstanceUID == uids["series"]
  assert first.SOPInstanceUID != second.SOPInstanceUID
  assert first.file_meta.MediaStorageSOPInstanceUID == first.SOPInstanceUID
  assert first.SOPInstanceUID.is_valid and first.StudyInstanceUID.is_valid
  # stored as uint16 with step 2/65535: round trip within half a step
  np.testing.assert_allclose(synthetic_dicom.read_intensity(tmp_path / "s0.dcm"), image, rtol=0,
                             atol=1.0 / 65535 + 1e-9)
  assert not list(tmp_path.glob(".*"))  # no temporary files left behind


def test_figures_are_pngs(tmp_path):
  rng = np.random.default_rng(3)
  x = rng.uniform(-1, 1, (3, SIZE, SIZE, 1))
  figures.sample_grid(tmp_path / "g.png", x, _labels(rng, 3), x, row_titles=["a", "b", "c"])
  figures.sample_grid(tmp_path / "g2.png", x, _labels(rng, 3))
  traj = rng.normal(size=(3, 4, SIZE, SIZE, 1))
  figures.trajectory_figure(tmp_path / "t.png", traj, np.abs(traj), [980, 500, 100, 0], traj)
  for name in ("g.png", "g2.png", "t.png"):
    with Image.open(tmp_path / name) as png:
      assert png.format == "PNG" and min(png.size) > 100
