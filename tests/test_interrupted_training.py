"""Interrupted `train.py` runs: SIGKILL then restart, SIGTERM/SIGINT checkpoint-and-exit, NaN gradients.

The subprocess runs train a one-level UNet on 32x32 phantom slices (a few seconds each); all runs
share one TFDS build so only the first pays for it.
"""

import os
import pathlib
import re
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mrixai_jax.training import checkpoint, loop
from tests import tiny_task

ROOT = pathlib.Path(__file__).resolve().parents[1]
NUM_STEPS, EVERY = 40, 10
_POLL_S, _WAIT_S = 0.02, 240


@pytest.fixture(scope="module")
def tfds_dir(tmp_path_factory):
  return tmp_path_factory.mktemp("tfds")


def _command(workdir, tfds_dir) -> list:
  overrides = {
      "data.image_size": 32, "data.num_slices": 32, "data.tfds_dir": tfds_dir,
      "model.block_out_channels": "(8,)", "model.down_block_types": "('DownBlock2D',)",
      "model.up_block_types": "('UpBlock2D',)", "train.num_steps": NUM_STEPS, "train.checkpoint_every": EVERY,
      "train.log_every": 1, "train.sample_every": 0, "train.batch_size": 4, "train.warmup_steps": 2,
      "train.keep_checkpoints": 2,
  }
  # --verbosity=1: every step's progress line (the default shows one per progress.LOG_EVERY_S).
  return [sys.executable, "train.py", "--config=configs/demo.py", f"--workdir={workdir}", "--verbosity=1"] + [
      f"--config.{k}={v}" for k, v in overrides.items()]


def _start(workdir, tfds_dir):
  log = open(pathlib.Path(workdir).with_suffix(".log"), "w")  # a file, not a pipe: no back-pressure
  return subprocess.Popen(_command(workdir, tfds_dir), cwd=ROOT, stdout=log, stderr=subprocess.STDOUT), log


def _run(workdir, tfds_dir) -> str:
  proc, log = _start(workdir, tfds_dir)
  rc = proc.wait(timeout=_WAIT_S)
  log.close()
  text = pathlib.Path(workdir).with_suffix(".log").read_text()
  assert rc == 0, text[-3000:]
  return text


def _steps(workdir) -> list:
  directory = pathlib.Path(workdir) / "checkpoints"
  return sorted(int(p.name) for p in directory.iterdir() if p.name.isdigit()) if directory.is_dir() else []


def _wait_for_checkpoint(proc, workdir) -> None:
  deadline = time.monotonic() + _WAIT_S
  while not _steps(workdir):
    assert proc.poll() is None, "train.py ended before writing its first checkpoint"
    assert time.monotonic() < deadline, "no checkpoint appeared"
    time.sleep(_POLL_S)


def _last_logged_step(text: str) -> int:
  return max(int(s) for s in re.findall(r"diffusion: step (\d+)/", text))


def _assert_same_params(a_dir, b_dir):
  (a, a_step), (b, b_step) = checkpoint.load_inference_params(str(a_dir)), checkpoint.load_inference_params(str(b_dir))
  assert a_step == b_step == NUM_STEPS
  leaves_a, leaves_b = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
  assert len(leaves_a) == len(leaves_b) > 10
  for x, y in zip(leaves_a, leaves_b):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))  # bitwise on CPU


@pytest.fixture(scope="module")
def straight_run(tfds_dir, tmp_path_factory):
  workdir = tmp_path_factory.mktemp("straight") / "run"
  _run(workdir, tfds_dir)
  return workdir


def test_sigkill_then_restart_resumes_and_matches_uninterrupted_run(tmp_path, tfds_dir, straight_run):
  workdir = tmp_path / "killed"
  proc, log = _start(workdir, tfds_dir)
  _wait_for_checkpoint(proc, workdir)
  proc.send_signal(signal.SIGKILL)
  proc.wait(timeout=_WAIT_S)
  log.close()
  killed_log = workdir.with_suffix(".log").read_text()
  left = _steps(workdir)
  print(f"SIGKILL after step {_last_logged_step(killed_log)}; checkpoints left: {left}")
  assert left and max(left) < NUM_STEPS, "the run must be killed mid-way for this test to mean anything"
  assert _last_logged_step(killed_log) - max(left) <= EVERY  # at most one checkpoint interval lost

  resumed_log = _run(workdir, tfds_dir)
  assert f"resumed from step {max(left)}" in resumed_log
  _assert_same_params(workdir, straight_run)


def test_sigterm_saves_current_step_exits_143_and_resume_matches(tmp_path, tfds_dir, straight_run):
  workdir = tmp_path / "terminated"
  proc, log = _start(workdir, tfds_dir)
  _wait_for_checkpoint(proc, workdir)
  proc.send_signal(signal.SIGTERM)
  rc = proc.wait(timeout=_WAIT_S)
  log.close()
  text = workdir.with_suffix(".log").read_text()
  print(text.strip().splitlines()[-1])
  assert rc == 128 + signal.SIGTERM, text[-3000:]
  assert "Traceback" not in text
  saved = int(re.search(r"SIGTERM received; saved checkpoint step (\d+)", text).group(1))
  assert saved == _last_logged_step(text) < NUM_STEPS  # the step in flight, not the last periodic one
  assert saved in _steps(workdir)

  assert f"resumed from step {saved}" in _run(workdir, tfds_dir)
  _assert_same_params(workdir, straight_run)


def test_sigint_in_process_checkpoints_the_step_in_flight(tmp_path):
  def interrupt(step, state):
    del state
    os.kill(os.getpid(), signal.SIGINT)

  task = tiny_task.build(tiny_task.quadratic, num_steps=6, checkpoint_every=100)
  task.actions = (loop.Action(every=2, fn=interrupt),)
  previous = signal.getsignal(signal.SIGINT)
  with pytest.raises(loop.Interrupted, match="SIGINT received; saved checkpoint step 2") as info:
    loop.run(task, str(tmp_path))
  assert info.value.exit_code == 130 and info.value.step == 2
  assert signal.getsignal(signal.SIGINT) is previous  # handlers restored
  assert checkpoint.load_inference_params(str(tmp_path))[1] == 2


def test_nan_gradient_with_finite_loss_stops_at_step_1(tmp_path):
  def loss_fn(params, batch, key):  # value 0, gradient 0 * inf = NaN
    del batch, key
    return jnp.sum(jnp.sqrt(params["w"] * 0.0)), {}

  with pytest.raises(loop.NonFiniteError, match="gradients or parameters at step 1") as info:
    loop.run(tiny_task.build(loss_fn), str(tmp_path))
  assert "loss 0.0" in str(info.value)
