"""TFDS builders and load_split: build into a temp dir, read back without TensorFlow, split by patient."""

import subprocess
import sys

import numpy as np
import pytest

from configs import demo
from mrixai_jax.data import phantom, pipeline, preprocess


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
  subprocess.run([sys.executable, "-c", code], check=True, cwd=pytest.importorskip("pathlib").Path(
      __file__).parents[1], capture_output=True)


def test_unknown_split_name():
  with pytest.raises(ValueError, match="split"):
    pipeline.load_split(demo.get_config().data, "holdout", "/nonexistent")
