"""A duke_breast_mri build over one good and three bad patients: the good one's slices are in the dataset,
each bad one is skipped and reported (patient, file, reason) in the log summary and the dataset metadata."""

import logging
import os

import nrrd
import numpy as np
import pydicom
import pytest

from configs import demo
from mrixai_jax.data import pipeline
from mrixai_jax.data.tfds import make_builder
from tests import fake_duke

SLICES = 6


def _duke_config(tmp_path, manual):
  """The data section for a duke_breast_mri build of `manual` into `tmp_path/tfds`, every patient in train."""
  cfg = demo.get_config().data
  cfg.unlock()
  cfg.name, cfg.image_size, cfg.manual_dir = "duke_breast_mri", 32, str(manual)
  cfg.tfds_dir, cfg.split_fractions = str(tmp_path / "tfds"), (1.0, 0.0, 0.0)
  return cfg


def _pre_series_files(manual, pid) -> list:
  """The pre-contrast series' files (write_duke_patient writes it to `series0`), in name order."""
  folder = next((manual / "Duke-Breast-Cancer-MRI" / pid).glob("*/series0"))
  return sorted(folder.glob("*.dcm"))


def _truncate_one_slice(manual, pid) -> str:
  path = _pre_series_files(manual, pid)[2]
  os.truncate(path, path.stat().st_size - 4000)  # half the 8 KiB of pixel data is gone
  return str(path)


def _mask_on_a_coarser_grid(manual, pid) -> str:
  """Rewrites the breast mask with half the matrix size (32 x 32) at twice the pixel spacing."""
  path = manual / "Segmentation_Masks_NRRD" / pid / f"Segmentation_{pid}_Breast.seg.nrrd"
  data, header = nrrd.read(str(path))
  header["space directions"] = np.diag([2 * fake_duke.SPACING, 2 * fake_duke.SPACING, fake_duke.DZ])
  nrrd.write(str(path), np.ascontiguousarray(data[::2, ::2, :]), header)
  return str(path)


def _one_slice_of_another_matrix_size(manual, pid) -> str:
  path = _pre_series_files(manual, pid)[3]
  ds = pydicom.dcmread(path)
  ds.Rows, ds.Columns = 32, 32
  ds.PixelData = np.zeros((32, 32), "<i2").tobytes()
  ds.save_as(path)
  return str(path)


def test_bad_patients_are_skipped_and_reported_good_one_is_built(tmp_path, caplog):
  manual = tmp_path / "manual"
  good, pixels, labels = fake_duke.write_duke_patient(str(manual), 1, num_slices=SLICES)
  bad = {}
  for number, (spoil, problem) in enumerate(((_truncate_one_slice, "cannot decode pixel data"),
                                             (_mask_on_a_coarser_grid, "mask grid does not match the image grid"),
                                             (_one_slice_of_another_matrix_size, "image size (32, 32) differs")), 2):
    pid, _, _ = fake_duke.write_duke_patient(str(manual), number, num_slices=SLICES)
    bad[pid] = (spoil(manual, pid), problem)
  cfg = _duke_config(tmp_path, manual)

  with caplog.at_level(logging.WARNING):
    data = pipeline.load_split(cfg, "train", str(tmp_path))

  assert set(data["patient_id"].tolist()) == {good}
  fake_duke.assert_split_matches_volume(data, pixels, labels, cfg)

  skipped = make_builder(cfg, cfg.tfds_dir).info.metadata["skipped_patients"]  # read back from metadata.json
  print(skipped)
  assert [s["patient_id"] for s in skipped] == sorted(bad)
  for entry in skipped:
    file, problem = bad[entry["patient_id"]]
    assert entry["file"] == file and problem in entry["reason"], entry
  summary = [r.getMessage() for r in caplog.records if "built from" in r.getMessage()]
  assert len(summary) == 1 and "built from 1 of 4 patients; skipped 3: " in summary[0]
  for pid, (file, problem) in bad.items():
    assert f"{pid} ({file}: " in summary[0] and problem in summary[0]


def test_build_where_no_patient_loads_fails_and_leaves_no_dataset(tmp_path):
  manual = tmp_path / "manual"
  pid, _, _ = fake_duke.write_duke_patient(str(manual), 5, num_slices=SLICES)
  _truncate_one_slice(manual, pid)
  cfg = _duke_config(tmp_path, manual)
  with pytest.raises(ValueError, match=r"none of 1 patients could be loaded"):
    pipeline.load_split(cfg, "train", str(tmp_path))
  assert not make_builder(cfg, cfg.tfds_dir).is_prepared()
  assert not list((tmp_path / "tfds").rglob("*array_record*"))  # no partial dataset left behind
