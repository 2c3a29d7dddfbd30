"""Later starts on a workdir build on its recorded config: keys the command line does not set keep
their recorded values and `--config` may be left out (mrixai_jax/workdir.py `apply_recorded`, cli.py)."""

import json
import pathlib
import re
import subprocess
import sys

import numpy as np

from configs import demo
from mrixai_jax import workdir

ROOT = pathlib.Path(__file__).resolve().parents[1]

TINY = {"data.image_size": 32, "data.num_slices": 16, "model.block_out_channels": "(8,)",
        "model.down_block_types": "('DownBlock2D',)", "model.up_block_types": "('UpBlock2D',)",
        "train.num_steps": 2, "train.sample_every": 0, "train.batch_size": 4, "train.warmup_steps": 1}


def _run(script: str, *args):
  return subprocess.run([sys.executable, script, *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_recorded_values_fill_the_keys_the_command_line_leaves_out(tmp_path):
  config = demo.get_config()
  config.model.block_out_channels, config.train.num_steps, config.heads.kind = (8, 16), 7, "eppnet"
  workdir.check_and_record(config, str(tmp_path), "train", config_file="configs/demo.py")
  fresh = demo.get_config()
  fresh.sample.num_samples = 5
  changed = workdir.apply_recorded(fresh, str(tmp_path), given_keys={"train.num_steps"})
  assert changed == ["model.block_out_channels"]
  assert fresh.model.block_out_channels == (8, 16)  # a tuple again, as the config file declares it
  assert fresh.train.num_steps == demo.get_config().train.num_steps  # given on the command line: kept
  assert fresh.heads.kind == demo.get_config().heads.kind  # per invocation, never from the record
  assert fresh.sample.num_samples == 5  # sample section not recorded by train.py
  assert workdir.recorded_config_file(str(tmp_path)) == str(ROOT / "configs/demo.py")


def test_sample_without_repeating_the_training_overrides(tmp_path):
  # train.py reads the record through the same cli.run path; test_extend_training resumes train.py
  work = tmp_path / "work"
  overrides = [f"--config.{k}={v}" for k, v in dict(TINY, **{"data.tfds_dir": tmp_path / "tfds"}).items()]
  trained = _run("train.py", "--config=configs/demo.py", f"--workdir={work}", *overrides)
  assert trained.returncode == 0, trained.stderr[-3000:]

  sampled = _run("sample.py", f"--workdir={work}", "--num_samples=2", "--seed=1")
  assert sampled.returncode == 0, sampled.stderr[-3000:]
  with np.load(work / "samples" / "samples.npz") as samples:
    assert samples["samples"].shape == (2, 32, 32, 1)
  recorded = json.loads((work / workdir.CONFIG_FILE).read_text())["config"]
  assert recorded["sample.num_samples"] == 2 and recorded["data.num_slices"] == 16

  with_file = _run("sample.py", "--config=configs/demo.py", f"--workdir={work}", "--num_samples=2", "--seed=1")
  assert with_file.returncode == 0, with_file.stderr[-3000:]
  assert re.search(r"sample.py: \d+ keys keep the values recorded in .* although configs/demo.py sets them "
                   r"otherwise: .*data.image_size", with_file.stderr)

  refused = _run("sample.py", f"--workdir={work}", "--config.data.num_slices=17")
  assert refused.returncode == 2 and "Traceback" not in refused.stderr
  assert "data.num_slices (16 -> 17); pass --overwrite" in refused.stderr.strip().splitlines()[-1]


def test_no_config_and_no_record_is_one_line(tmp_path):
  proc = _run("sample.py", f"--workdir={tmp_path}")
  assert proc.returncode == 2 and "Traceback" not in proc.stderr
  assert proc.stderr.strip().splitlines()[-1] == (
      f"sample.py: error: --config is required: {tmp_path} holds no recorded run with a config file")
