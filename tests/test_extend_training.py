"""Raising train.num_steps on an existing workdir continues the run from its last checkpoint
(mrixai_jax/workdir.py); shortening it, or changing it with anything else, is still refused."""

import json
import pathlib
import re
import subprocess
import sys

import pytest

from configs import demo
from mrixai_jax import workdir

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_raising_num_steps_keeps_checkpoints_and_removes_what_the_short_run_made(tmp_path):
  config = demo.get_config()
  config.train.num_steps = 4
  workdir.check_and_record(config, str(tmp_path), "explain")
  for rel in ("checkpoints/4", "logs/diffusion", "samples", "eval", "heads/ppnet", "stages"):
    (tmp_path / rel).mkdir(parents=True)
  for name in ("diffusion", "samples", "heads_ppnet"):
    (tmp_path / "stages" / f"{name}.json").write_text("{}")
  config.train.num_steps = 6
  assert workdir.check_and_record(config, str(tmp_path), "explain") is None
  assert json.loads((tmp_path / workdir.CONFIG_FILE).read_text())["config"]["train.num_steps"] == 6
  left = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if workdir.CONFIG_FILE not in p.name)
  assert left == ["checkpoints", "checkpoints/4", "heads", "heads/ppnet", "logs", "logs/diffusion", "stages",
                  "stages/heads_ppnet.json"]
  config.train.num_steps = 5  # shorter than the recorded run
  with pytest.raises(workdir.WorkdirConfigError, match=r"train.num_steps \(6 -> 5\)"):
    workdir.check_and_record(config, str(tmp_path), "explain")
  config.train.num_steps, config.train.learning_rate = 8, 1.0  # not alone
  with pytest.raises(workdir.WorkdirConfigError, match="train.learning_rate"):
    workdir.check_and_record(config, str(tmp_path), "explain")


def _train(workdir_path, tfds_dir, num_steps: int) -> str:
  overrides = {"data.image_size": 32, "data.num_slices": 16, "data.tfds_dir": tfds_dir,
               "model.block_out_channels": "(8,)", "model.down_block_types": "('DownBlock2D',)",
               "model.up_block_types": "('UpBlock2D',)", "train.num_steps": num_steps, "train.checkpoint_every": 2,
               "train.sample_every": 0, "train.batch_size": 4, "train.warmup_steps": 1}
  cmd = [sys.executable, "train.py", "--config=configs/demo.py", f"--workdir={workdir_path}"]
  cmd += [f"--config.{k}={v}" for k, v in overrides.items()]
  proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return proc.stderr


def test_train_py_to_4_then_6_steps_resumes_at_4_and_ends_at_6(tmp_path):
  work, tfds_dir = tmp_path / "work", tmp_path / "tfds"
  _train(work, tfds_dir, 4)
  err = _train(work, tfds_dir, 6)
  assert "train.num_steps 4 -> 6: training continues from the last checkpoint" in err
  assert "resumed from step 4" in err
  assert re.findall(r"^diffusion: step (\d+)/6", err, re.M) == ["6"]
  assert sorted(int(p.name) for p in (work / "checkpoints").iterdir() if p.name.isdigit())[-1] == 6
