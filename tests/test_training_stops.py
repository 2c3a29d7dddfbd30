"""Stops of the one training loop, run for both of its tasks through `train.py`: SIGKILL then restart,
SIGTERM (checkpoint of the step in flight, exit 143, resume), each resumed run bitwise equal to an
uninterrupted one; in-process SIGINT and NaN gradients (a one-parameter task); every entry point turns
a training stop into one line and its exit code.

The subprocess runs train a one-level UNet (diffusion) or a ProtoPNet head with a tiny random-init CNN
(heads) on 32x32 phantom slices; all runs share one TFDS build so only the first pays for it.
"""

import dataclasses
import os
import pathlib
import re
import signal
import subprocess
import sys
import textwrap
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mrixai_jax.training import checkpoint, loop
from tests import tiny_task

ROOT = pathlib.Path(__file__).resolve().parents[1]
_POLL_S, _WAIT_S = 0.02, 240


@dataclasses.dataclass(frozen=True)
class Run:
  """One task's `train.py` run: overrides, where it checkpoints, what its lines are called."""

  name: str
  num_steps: int
  every: int
  overrides: dict
  checkpoint_subdir: str
  params_tree: str


_DATA = {"data.image_size": 32, "data.num_slices": 32}
RUNS = {
    "diffusion": Run("diffusion", 40, 10, {
        **_DATA, "model.block_out_channels": "(8,)", "model.down_block_types": "('DownBlock2D',)",
        "model.up_block_types": "('UpBlock2D',)", "train.num_steps": 40, "train.checkpoint_every": 10,
        "train.log_every": 1, "train.sample_every": 0, "train.batch_size": 4, "train.warmup_steps": 2,
        "train.keep_checkpoints": 2}, "checkpoints", "ema_params"),
    # ~1 s of steps after the first checkpoint, so the signal lands mid-run; the push at step 395.
    "heads": Run("heads/ppnet", 400, 10, {
        **_DATA, "task": "heads", "heads.kind": "ppnet", "heads.backbone": "small_cnn",
        "heads.small_cnn_channels": "(8,16)", "heads.prototypes_per_class": 2, "heads.prototype_dim": 8,
        "heads.train.batch_size": 8, "heads.train.push_batch_size": 16, "heads.train.num_steps": 400,
        "heads.train.warm_steps": 5, "heads.train.last_layer_steps": 5, "heads.train.checkpoint_every": 10,
        "heads.train.log_every": 1}, "heads/ppnet/checkpoints", "params"),
}


@pytest.fixture(scope="module")
def tfds_dir(tmp_path_factory):
  return tmp_path_factory.mktemp("tfds")


def _start(run: Run, workdir, tfds_dir):
  # --verbosity=1: every step's progress line (the default shows one per progress.LOG_EVERY_S).
  cmd = [sys.executable, "train.py", "--config=configs/demo.py", f"--workdir={workdir}", "--verbosity=1",
         f"--config.data.tfds_dir={tfds_dir}"] + [f"--config.{k}={v}" for k, v in run.overrides.items()]
  log = open(pathlib.Path(workdir).with_suffix(".log"), "w")  # a file, not a pipe: no back-pressure
  return subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT), log


def _finish(proc, log, workdir) -> tuple:
  rc = proc.wait(timeout=_WAIT_S)
  log.close()
  return rc, pathlib.Path(workdir).with_suffix(".log").read_text()


def _run(run: Run, workdir, tfds_dir) -> str:
  rc, text = _finish(*_start(run, workdir, tfds_dir), workdir)
  assert rc == 0, text[-3000:]
  return text


def _steps(run: Run, workdir) -> list:
  directory = pathlib.Path(workdir) / run.checkpoint_subdir
  return sorted(int(p.name) for p in directory.iterdir() if p.name.isdigit()) if directory.is_dir() else []


def _wait_for_checkpoint(run: Run, proc, workdir) -> None:
  deadline = time.monotonic() + _WAIT_S
  while not _steps(run, workdir):
    assert proc.poll() is None, "train.py ended before writing its first checkpoint"
    assert time.monotonic() < deadline, "no checkpoint appeared"
    time.sleep(_POLL_S)


def _signal_after_first_checkpoint(run: Run, workdir, tfds_dir, sig) -> tuple:
  """Starts a run, sends `sig` once its first checkpoint exists; `(exit code, log text)`."""
  proc, log = _start(run, workdir, tfds_dir)
  _wait_for_checkpoint(run, proc, workdir)
  proc.send_signal(sig)
  return _finish(proc, log, workdir)


def _last_logged_step(run: Run, text: str) -> int:
  return max(int(s) for s in re.findall(rf"{re.escape(run.name)}: step (\d+)/", text))


def _assert_same_params(run: Run, a_dir, b_dir):
  (a, a_step), (b, b_step) = (checkpoint.load_inference_params(str(d), run.checkpoint_subdir, run.params_tree)
                              for d in (a_dir, b_dir))
  assert a_step == b_step == run.num_steps
  leaves_a, leaves_b = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
  assert len(leaves_a) == len(leaves_b) > 3
  for x, y in zip(leaves_a, leaves_b):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))  # bitwise on CPU


@pytest.fixture(scope="module", params=sorted(RUNS))
def straight_run(request, tfds_dir, tmp_path_factory):
  run = RUNS[request.param]
  workdir = tmp_path_factory.mktemp("straight") / "run"
  _run(run, workdir, tfds_dir)
  return run, workdir


def test_sigkill_then_restart_resumes_and_matches_uninterrupted_run(tmp_path, tfds_dir, straight_run):
  run, straight = straight_run
  workdir = tmp_path / "killed"
  _, killed_log = _signal_after_first_checkpoint(run, workdir, tfds_dir, signal.SIGKILL)
  left = _steps(run, workdir)
  print(f"{run.name}: SIGKILL after step {_last_logged_step(run, killed_log)}; checkpoints left: {left}")
  assert left and max(left) < run.num_steps, "the run must be killed mid-way for this test to mean anything"
  assert _last_logged_step(run, killed_log) - max(left) <= run.every  # at most one checkpoint interval lost

  resumed_log = _run(run, workdir, tfds_dir)
  assert f"{run.name}: resumed from step {max(left)}" in resumed_log
  _assert_same_params(run, workdir, straight)


def test_sigterm_saves_current_step_exits_143_and_resume_matches(tmp_path, tfds_dir, straight_run):
  run, straight = straight_run
  workdir = tmp_path / "terminated"
  rc, text = _signal_after_first_checkpoint(run, workdir, tfds_dir, signal.SIGTERM)
  print(text.strip().splitlines()[-1])
  assert rc == 128 + signal.SIGTERM, text[-3000:]
  assert "Traceback" not in text
  saved = int(re.search(rf"{re.escape(run.name)}: SIGTERM received; saved checkpoint step (\d+)", text).group(1))
  assert saved == _last_logged_step(run, text) < run.num_steps  # the step in flight, not the last periodic one
  assert saved in _steps(run, workdir)

  resumed = _run(run, workdir, tfds_dir)
  assert f"{run.name}: resumed from step {saved}" in resumed
  assert f"{run.name}: step {saved + 1}/" in resumed and f"{run.name}: step {saved}/" not in resumed
  _assert_same_params(run, workdir, straight)


def test_sigint_in_process_checkpoints_the_step_in_flight(tmp_path):
  def interrupt(step, state):
    del step, state
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
  def loss_fn(params, batch, key, step):  # value 0, gradient 0 * inf = NaN
    del batch, key, step
    return jnp.sum(jnp.sqrt(params["w"] * 0.0)), {}

  with pytest.raises(loop.NonFiniteError, match="gradients or parameters at step 1") as info:
    loop.run(tiny_task.build(loss_fn), str(tmp_path))
  assert "loss 0.0" in str(info.value)


STOP_SCRIPT = textwrap.dedent("""
    import sys
    from mrixai_jax import cli
    from mrixai_jax.training import interrupts

    def main(argv):
      if sys.argv[1] == "signal":
        raise interrupts.Interrupted("heads/ppnet: SIGINT received; saved checkpoint step 7 in DIR", 2, 7)
      raise interrupts.NonFiniteError("heads/ppnet: non-finite loss, gradients or parameters at step 3")

    cli.run(main)
""")


def test_entry_points_turn_a_training_stop_into_one_line_and_its_exit_code(tmp_path):
  script = tmp_path / "entry.py"
  script.write_text(STOP_SCRIPT)
  for kind, code, line in (("signal", 130, "entry.py: heads/ppnet: SIGINT received; saved checkpoint step 7 in DIR"),
                           ("nan", 1, "entry.py: heads/ppnet: non-finite loss, gradients or parameters at step 3")):
    proc = subprocess.run([sys.executable, str(script), kind], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == code, proc.stderr
    assert proc.stderr.strip().splitlines() == [line], proc.stderr  # no traceback
