"""`train.num_steps = -1`: training runs `num_epochs` epochs of (training slices // batch) steps."""

import os
import subprocess
import sys

import numpy as np
import pytest
from ml_collections import ConfigDict

from mrixai_jax.data import pipeline
from mrixai_jax.errors import ConfigError
from mrixai_jax.training import state as state_lib
from mrixai_jax.training import tasks
from tests import fake_duke
from tests.test_study_e2e import tiny_config


def _train_config(num_steps, num_epochs, batch_size=8):
  return ConfigDict({"num_steps": num_steps, "num_epochs": num_epochs, "batch_size": batch_size})


def test_resolve_num_steps():
  assert state_lib.resolve_num_steps(_train_config(7, 200), 1000) == 7  # positive: as given
  assert state_lib.resolve_num_steps(_train_config(-1, 3), 100) == 3 * (100 // 8)
  with pytest.raises(ConfigError, match="train.num_epochs"):
    state_lib.resolve_num_steps(_train_config(-1, 0), 100)
  with pytest.raises(ConfigError, match="train.num_steps"):
    state_lib.resolve_num_steps(_train_config(0, 3), 100)
  with pytest.raises(ConfigError, match=r"train.batch_size: 8 exceeds the training split \(5 examples\)"):
    state_lib.resolve_num_steps(_train_config(-1, 3), 5)


def _checkpoint_steps(workdir):
  return sorted(int(p) for p in os.listdir(os.path.join(workdir, "checkpoints")) if p.isdigit())


def test_train_py_runs_num_epochs_on_the_phantom(tmp_path):
  c = tiny_config()
  overrides = {"data.image_size": 32, "data.num_slices": 40, "model.block_out_channels": "(16, 32)",
               "model.down_block_types": "('DownBlock2D', 'AttnDownBlock2D')",
               "model.up_block_types": "('AttnUpBlock2D', 'UpBlock2D')", "train.batch_size": 4,
               "train.num_steps": -1, "train.num_epochs": 1, "train.warmup_steps": 1,
               "train.checkpoint_every": 1000, "train.sample_every": 0, "train.log_every": 1000}
  workdir = str(tmp_path / "w")
  args = [f"--config.{k}={v}" for k, v in overrides.items()]
  proc = subprocess.run([sys.executable, "train.py", "--config=configs/demo.py", f"--workdir={workdir}", *args],
                        capture_output=True, text=True, timeout=600,
                        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  assert proc.returncode == 0, proc.stderr[-3000:]
  c.data.num_slices, c.data.tfds_dir = 40, ""
  num_train = len(pipeline.load_split(c.data, "train", workdir)["image"])
  assert num_train >= 8
  assert _checkpoint_steps(workdir) == [num_train // 4]
  assert "-> 1 epochs of" in proc.stderr


def test_num_epochs_on_fake_duke_data(tmp_path):
  manual = tmp_path / "manual"
  for number in (2, 25, 41):
    fake_duke.write_duke_patient(str(manual), number, num_slices=6)
  c = tiny_config()
  c.task = "diffusion"
  c.data.name, c.data.manual_dir, c.data.tfds_dir = "duke_breast_mri", str(manual), str(tmp_path / "tfds")
  c.train.batch_size, c.train.num_steps, c.train.num_epochs, c.train.checkpoint_every = 4, -1, 2, 1000
  state = tasks.train(c, str(tmp_path / "w"))
  num_train = len(pipeline.load_split(c.data, "train", str(tmp_path / "w"))["image"])
  assert num_train >= 4
  assert int(np.asarray(state.step)) == 2 * (num_train // 4)
  assert _checkpoint_steps(str(tmp_path / "w")) == [2 * (num_train // 4)]
