"""TFDS builders and load_split: build into a temp dir, read back without TensorFlow, split by patient."""

import pathlib
import subprocess
import sys

import numpy as np
import pydicom
import pytest

from configs import demo
from mrixai_jax.data import dicom, duke, phantom, pipeline, preprocess
from tests import fake_duke


def _phantom_config(tmp_path):
  cfg = demo.get_config().data
  cfg.unlock()
  cfg.image_size, cfg.num_slices, cfg.phantom_slices_per_patient = 32, 40, 4
  cfg.tfds_dir = str(tmp_path / "tfds")
  return cfg


def test_breast_phantom_builds_and_splits_by_patient(tmp_path):
  cfg = _phantom_config(tmp_path)
  splits = {name: pipeline.load_split(cfg, name, str(tmp_path)) for name in preprocess.SPLITS}
  expected = phantom.generate(40, 32, cfg.seed, slices_per_patient=4)
  seen = []
  for name, data in splits.items():
    assert data["image"].shape[1:] == (32, 32, 1) and data["image"].dtype == np.float32
    assert data["labels"].dtype == np.uint8 and data["slice_index"].dtype == np.int32
    rows = [int(p[-4:]) * 4 + s for p, s in zip(data["patient_id"], data["slice_index"])]
    np.testing.assert_array_equal(data["image"], expected["image"][rows])
    np.testing.assert_array_equal(data["labels"], expected["labels"][rows])
    seen.append(set(data["patient_id"].tolist()))
  assert not (seen[0] & seen[1] or seen[0] & seen[2] or seen[1] & seen[2])
  assert len(seen[0] | seen[1] | seen[2]) == 10 and len(seen[0]) == 6


def test_second_load_reuses_the_built_dataset(tmp_path):
  cfg = _phantom_config(tmp_path)
  pipeline.load_split(cfg, "test", str(tmp_path))
  files = sorted((tmp_path / "tfds").rglob("*array_record*"))
  stamps = [f.stat().st_mtime_ns for f in files]
  pipeline.load_split(cfg, "test", str(tmp_path))
  assert files and [f.stat().st_mtime_ns for f in files] == stamps
  cfg.seed = 1  # another config: its own directory, no collision
  other = pipeline.load_split(cfg, "test", str(tmp_path))
  assert len(sorted((tmp_path / "tfds").rglob("*array_record*"))) == 2 * len(files)
  assert len(other["image"])


def test_reading_needs_no_tensorflow(tmp_path):
  cfg = _phantom_config(tmp_path)
  pipeline.load_split(cfg, "train", str(tmp_path))
  code = (
      "import sys\n"
      "from configs import demo\n"
      "from mrixai_jax.data import pipeline\n"
      "c = demo.get_config().data\n"
      f"c.image_size, c.num_slices, c.phantom_slices_per_patient = 32, 40, 4\n"
      f"c.tfds_dir = {str(tmp_path / 'tfds')!r}\n"
      f"n = len(pipeline.load_split(c, 'train', {str(tmp_path)!r})['image'])\n"
      "assert n == 24, n\n"
      "assert 'tensorflow' not in sys.modules, 'tensorflow was imported'\n")
  subprocess.run([sys.executable, "-c", code], check=True, cwd=pathlib.Path(__file__).parents[1],
                 capture_output=True)


def test_unknown_split_and_dataset_names(tmp_path):
  with pytest.raises(ValueError, match="split"):
    pipeline.load_split(demo.get_config().data, "holdout", "/nonexistent")
  cfg = _phantom_config(tmp_path)
  cfg.name = "lidc"
  with pytest.raises(ValueError, match="unknown data.name 'lidc'"):
    pipeline.load_split(cfg, "train", str(tmp_path))


def test_duke_like_tree_builds_end_to_end(tmp_path):
  manual = tmp_path / "manual"
  made = {}
  for number in (2, 25, 41):
    pid, pixels, labels = fake_duke.write_duke_patient(str(manual), number, num_slices=6)
    made[pid] = (pixels, labels)
  (manual / "Segmentation_Masks_NRRD" / "Breast_MRI_099").mkdir()  # masks without images: ignored
  cfg = demo.get_config().data
  cfg.unlock()
  cfg.name, cfg.image_size, cfg.manual_dir = "duke_breast_mri", 32, str(manual)
  cfg.tfds_dir = str(tmp_path / "tfds")
  seen = set()
  for name in preprocess.SPLITS:
    data = pipeline.load_split(cfg, name, str(tmp_path))
    (pid,) = set(data["patient_id"].tolist())  # three patients: one per split
    seen.add(pid)
    pixels, labels = made[pid]  # the pre-contrast series, not the post or T1 ones
    fake_duke.assert_split_matches_volume(data, pixels, labels, cfg)
    assert (data["labels"] == 2).any() and (data["labels"] == 3).any()
  assert seen == set(made)


def test_duke_series_classification():
  pre = ["ax dyn pre", "ax 3d dyn pre", "ax 3d dyn", "ax 3d dyn MP", "ax dynamic", "ax dyn",
         "Ax Vibrant MultiPhase", "ax 3d pre", "t1_fl3d_tra_dynVIEWS_spair_ pre"]
  post = ["ax dyn 1st pass", "ax dyn 4th pass", "ax dyn 1st pas", "ax 3d dyn 2nd pass", "Ph1/ax 3d dyn",
          "Ph4/ax dyn", "Ph1/Ax Vibrant MultiPhase", "1st ax dyn", "t1_fl3d_tra_dynVIEWS_spair 1st pass",
          "ax t1 +c", "ax t1 tse +c"]
  t1 = ["ax t1", "ax t1 tse", "ax t1 3mm", "ax t1 2mm", "ax t1 pre", "ax t1 repeat", "Ax 3D T1 NON FS",
        "ax 3d t1 bilateral", "AX IDEAL Breast"]
  assert {d: duke.classify_series(d) for d in pre} == {d: "pre" for d in pre}
  assert {d: duke.classify_series(d) for d in post} == {d: "post" for d in post}
  assert {d: duke.classify_series(d) for d in t1} == {d: "t1" for d in t1}
  assert duke.classify_series("localizer") == "other"


def test_duke_patient_with_anisotropic_pixels_is_rejected(tmp_path):
  pid, _, _ = fake_duke.write_duke_patient(str(tmp_path), 7, num_slices=3)
  for path in (tmp_path / "Duke-Breast-Cancer-MRI" / pid).rglob("*.dcm"):
    ds = pydicom.dcmread(path)
    ds.PixelSpacing = [0.3125, 0.35]
    ds.save_as(path)
  with pytest.raises(dicom.DicomError, match="not square"):
    duke.load_patient(str(tmp_path), pid)
  with pytest.raises(FileNotFoundError, match="Segmentation_Masks_NRRD"):
    duke.find_patients(str(tmp_path / "Duke-Breast-Cancer-MRI"))


def test_duke_without_manual_dir_explains_the_download(tmp_path):
  cfg = demo.get_config().data
  cfg.unlock()
  cfg.name, cfg.manual_dir, cfg.tfds_dir = "duke_breast_mri", "", str(tmp_path / "tfds")
  with pytest.raises(ValueError, match="data.manual_dir is empty") as info:
    pipeline.load_split(cfg, "train", str(tmp_path))
  assert "NBIA Data Retriever" in str(info.value)
