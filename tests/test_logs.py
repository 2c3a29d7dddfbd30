"""The entry points' default log policy (mrixai_jax/logs.py): the library's lines in plain text,
no third-party INFO, no TensorFlow start-up notice, no TFDS progress bar; --verbosity=1 keeps
absl's format and every progress line."""

import logging
import re
import subprocess
import sys

import pytest

from mrixai_jax import logs

ABSL_PREFIX = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d\d\.\d+ ", re.M)


def _record(pathname: str, level: int, msg: str) -> logging.LogRecord:
  return logging.LogRecord("absl", level, pathname, 1, msg, (), None)


@pytest.mark.parametrize("pathname, level, msg, shown", [
    (logs.PACKAGE_DIR + "training/loop.py", logging.INFO, "diffusion: step 1/2", True),
    (logs.PACKAGE_DIR + "training/loop.py", logging.DEBUG, "diffusion: step 1/2", True),  # absl's level decides
    ("/site-packages/tensorflow_datasets/core/dataset_builder.py", logging.INFO, "Reusing dataset", False),
    ("/site-packages/clu/metric_writers/logging_writer.py", logging.INFO, "[50] loss=0.1", False),
    ("/site-packages/tensorflow_datasets/core/dataset_builder.py", logging.WARNING,
     "Using custom data configuration: X", False),
    ("/site-packages/tensorflow_datasets/core/utils/file_utils.py", logging.WARNING,
     "Variant folder %s has no %s", False),
    ("/site-packages/orbax/checkpoint/foo.py", logging.WARNING, "disk almost full", True),
])
def test_default_filter(pathname, level, msg, shown):
  assert logs._DefaultFilter().filter(_record(pathname, level, msg)) is shown  # pylint: disable=protected-access


def test_plain_format_prefixes_only_warnings():
  fmt = logs._PlainFormatter()  # pylint: disable=protected-access
  assert fmt.format(_record(logs.PACKAGE_DIR + "x.py", logging.INFO, "study: done")) == "study: done"
  assert fmt.format(_record("/lib/y.py", logging.WARNING, "careful")) == "warning: careful"


def _train(tmp_path, *flags) -> str:
  overrides = {"data.image_size": 32, "data.num_slices": 16, "data.tfds_dir": tmp_path / "tfds",
               "model.block_out_channels": "(8,)", "model.down_block_types": "('DownBlock2D',)",
               "model.up_block_types": "('UpBlock2D',)", "train.num_steps": 4, "train.log_every": 1,
               "train.checkpoint_every": 4, "train.sample_every": 0, "train.batch_size": 4, "train.warmup_steps": 1}
  cmd = [sys.executable, "train.py", "--config=configs/demo.py", f"--workdir={tmp_path / 'work'}", *flags]
  cmd += [f"--config.{k}={v}" for k, v in overrides.items()]
  proc = subprocess.run(cmd, cwd=logs.PACKAGE_DIR + "..", capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return proc.stdout + proc.stderr


def test_train_py_default_output_is_plain_and_short(tmp_path):
  out = _train(tmp_path)
  assert not ABSL_PREFIX.search(out), out
  assert "oneDNN" not in out and "Generating splits" not in out and "Using custom data configuration" not in out
  assert "warning:" not in out, out  # a fresh workdir's first TFDS build warns about nothing
  # 4 steps in well under LOG_EVERY_S: only the final progress line, plain.
  assert re.findall(r"^diffusion: step (\d+)/4", out, re.M) == ["4"], out
  assert len(out.splitlines()) <= 12, out


def test_verbosity_1_shows_every_progress_line_in_absl_format(tmp_path):
  out = _train(tmp_path, "--verbosity=1")
  assert ABSL_PREFIX.search(out)
  assert re.findall(r"loop\.py:\d+\] diffusion: step (\d+)/4", out) == ["1", "2", "3", "4"], out[-3000:]
