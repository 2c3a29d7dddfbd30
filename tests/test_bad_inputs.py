"""Bad-input cases not covered by tests/test_dicom.py and tests/test_masks.py (see those for the rest).

Each case is generated here in a temporary folder; the reader either raises one `DicomError` line naming
the file and the problem, or skips the file with a note in `meta["skipped"]`.
"""

import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from mrixai_jax.data import dicom
from mrixai_jax.data.dicom import DicomError
from tests import fake_duke

SLICES = 3


@pytest.fixture
def series_folder(tmp_path):
  pixels = np.random.default_rng(0).integers(0, 4000, size=(SLICES, 64, 64)).astype(np.uint16)
  fake_duke.write_series(fake_duke.base_dataset(), str(tmp_path), pixels)
  return tmp_path, pixels


def test_random_bytes_named_dcm_alone_is_one_error_listing_it(tmp_path):
  (tmp_path / "random.dcm").write_bytes(np.random.default_rng(1).bytes(3000))
  with pytest.raises(DicomError) as info:
    dicom.load_series(str(tmp_path))
  print(info.value)
  assert "no MR image series" in str(info.value) and len(str(info.value).splitlines()) == 1


def test_random_bytes_fifo_and_folder_named_dcm_are_skipped_with_notes(series_folder):
  folder, pixels = series_folder
  (folder / "random.dcm").write_bytes(np.random.default_rng(1).bytes(3000))
  os.mkfifo(folder / "pipe.dcm")  # reading it would block forever
  (folder / "folder.dcm").mkdir()
  volume, meta = dicom.load_series(str(folder))
  np.testing.assert_array_equal(volume, pixels)
  reasons = {os.path.basename(f): r for f, r in meta["skipped"]}
  print(reasons)
  assert "not a DICOM file" in reasons["random.dcm"]
  assert "not a regular file" in reasons["pipe.dcm"]


def test_unreadable_file_is_named(series_folder):
  folder, _ = series_folder
  path = sorted(folder.glob("*.dcm"))[1]
  os.chmod(path, 0)
  try:
    if os.access(path, os.R_OK):
      pytest.skip("running as root: chmod 000 does not block reads (FIFO case above covers unreadable paths)")
    with pytest.raises(DicomError, match=f"{path.name}.*cannot read DICOM header.*Permission denied"):
      dicom.load_series(str(folder))
  finally:
    os.chmod(path, 0o644)


@pytest.mark.parametrize("name, shape, fragment", [
    ("small.png", (16, 16), "is 16x16, image is 64x64"),
    ("labels.png", None, "label values [9] outside 0..3"),
])
def test_sample_cli_bad_mask_is_one_line_naming_the_file(tmp_path, name, shape, fragment):
  from PIL import Image  # pylint: disable=g-import-not-at-top
  masks = tmp_path / "masks"
  masks.mkdir()
  array = np.zeros(shape, np.uint8) if shape else np.full((64, 64), 9, np.uint8)
  Image.fromarray(array).save(masks / name)
  proc = subprocess.run([sys.executable, "sample.py", "--config=configs/demo.py", f"--workdir={tmp_path / 'run'}",
                         f"--masks={masks}"], capture_output=True, text=True, timeout=300,
                        cwd=pathlib.Path(__file__).resolve().parents[1])
  last = proc.stderr.strip().splitlines()[-1]
  print(last)
  assert proc.returncode == 2 and "Traceback" not in proc.stderr
  assert last.startswith("sample.py: error: ") and name in last and fragment in last
