"""WORKDIR/config.json: recorded at first start; a later start with a different result-changing config fails."""

import json
import subprocess
import sys

import pytest

from configs import demo
from mrixai_jax import workdir


def test_first_start_records_then_identical_and_ignored_changes_pass(tmp_path):
  config = demo.get_config()
  workdir.check_and_record(config, str(tmp_path), "train")
  record = json.loads((tmp_path / workdir.CONFIG_FILE).read_text())
  assert record["config"]["train.learning_rate"] == config.train.learning_rate
  assert "sample" not in record["used_sections"] and "train" in record["used_sections"]
  workdir.check_and_record(config, str(tmp_path), "train")
  config.train.log_every = 7  # changes no result
  config.data.tfds_dir = "/elsewhere"
  config.sample.num_samples = 3  # train.py does not sample: not compared for train
  workdir.check_and_record(config, str(tmp_path), "train")


def test_changed_key_is_named_and_overwrite_records_the_new_config(tmp_path):
  config = demo.get_config()
  workdir.check_and_record(config, str(tmp_path), "train")
  config.train.learning_rate = 1.0
  config.model.layers_per_block = 3
  with pytest.raises(workdir.WorkdirConfigError, match=r"model.layers_per_block \(1 -> 3\), train.learning_rate "
                     r"\(0.002 -> 1.0\); pass --overwrite"):
    workdir.check_and_record(config, str(tmp_path), "train")
  workdir.check_and_record(config, str(tmp_path), "train", overwrite=True)
  workdir.check_and_record(config, str(tmp_path), "train")  # recorded now
  assert json.loads((tmp_path / workdir.CONFIG_FILE).read_text())["config"]["train.learning_rate"] == 1.0


def test_sections_are_compared_once_an_entry_point_has_used_them(tmp_path):
  config = demo.get_config()
  workdir.check_and_record(config, str(tmp_path), "train")
  config.sample.num_samples = 5
  workdir.check_and_record(config, str(tmp_path), "sample")  # first use of `sample`: recorded
  config.sample.num_samples = 6
  with pytest.raises(workdir.WorkdirConfigError, match=r"sample.num_samples \(5 -> 6\)"):
    workdir.check_and_record(config, str(tmp_path), "sample")
  with pytest.raises(workdir.WorkdirConfigError, match=r"sample.num_samples"):
    workdir.check_and_record(config, str(tmp_path), "explain")  # the study compares everything
  config.sample.num_samples = 5
  config.explain.num_images = 2
  workdir.check_and_record(config, str(tmp_path), "explain")


def test_corrupt_record_is_a_clear_error(tmp_path):
  (tmp_path / workdir.CONFIG_FILE).write_text("{not json")
  with pytest.raises(workdir.WorkdirConfigError, match="config.json is not valid JSON"):
    workdir.check_and_record(demo.get_config(), str(tmp_path), "train")


@pytest.mark.parametrize("script", ["train.py", "sample.py", "explain.py"])
def test_cli_refuses_a_different_config_in_one_line(tmp_path, script):
  workdir.check_and_record(demo.get_config(), str(tmp_path), "explain")
  proc = subprocess.run([sys.executable, script, "--config=configs/demo.py", f"--workdir={tmp_path}",
                         "--config.diffusion.num_timesteps=500"], capture_output=True, text=True, timeout=120)
  print(proc.stderr.strip().splitlines()[-1])
  assert proc.returncode == 2
  assert "Traceback" not in proc.stderr
  last = proc.stderr.strip().splitlines()[-1]
  assert last.startswith(f"{script}: error: {tmp_path} holds a run with a different config: "
                         f"diffusion.num_timesteps (1000 -> 500); pass --overwrite")
