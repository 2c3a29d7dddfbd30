"""Training stops at the CLI: SIGTERM stops `train.py --config.task=heads` cleanly (checkpoint of the step
in flight, exit 143, resume); every entry point (e.g. explain.py, whose study trains) turns a training
stop into one line and its exit code.

The heads runs train a ProtoPNet head with a tiny random-init CNN on 32x32 phantom slices (a few ms per
step; most of each run is start-up and compilation). That a resumed heads run equals an
uninterrupted one is the checkpoint's job (tests/test_prototypes_training.py); here: the signal.
"""

import os
import pathlib
import re
import textwrap
import signal
import subprocess
import sys
import time


ROOT = pathlib.Path(__file__).resolve().parents[1]
NUM_STEPS, EVERY = 400, 10  # ~1 s of steps after the first checkpoint: the signal lands mid-run
_POLL_S, _WAIT_S = 0.02, 240


def _command(workdir, tfds_dir) -> list:
  overrides = {
      "task": "heads", "heads.kind": "ppnet", "data.image_size": 32, "data.num_slices": 32,
      "data.tfds_dir": tfds_dir, "heads.backbone": "small_cnn", "heads.small_cnn_channels": "(8,16)",
      "heads.prototypes_per_class": 2, "heads.prototype_dim": 8, "heads.train.batch_size": 8,
      "heads.train.push_batch_size": 16, "heads.train.num_steps": NUM_STEPS, "heads.train.warm_steps": 5,
      "heads.train.last_layer_steps": 5, "heads.train.checkpoint_every": EVERY, "heads.train.log_every": 1,
  }
  # --verbosity=1: every step's progress line (the default shows one per progress.LOG_EVERY_S).
  return [sys.executable, "train.py", "--config=configs/demo.py", f"--workdir={workdir}", "--verbosity=1"] + [
      f"--config.{k}={v}" for k, v in overrides.items()]


def _start(workdir, tfds_dir):
  log = open(pathlib.Path(workdir).with_suffix(".log"), "w")  # a file, not a pipe: no back-pressure
  return subprocess.Popen(_command(workdir, tfds_dir), cwd=ROOT, stdout=log, stderr=subprocess.STDOUT), log


def _finish(proc, log, workdir) -> tuple:
  rc = proc.wait(timeout=_WAIT_S)
  log.close()
  return rc, pathlib.Path(workdir).with_suffix(".log").read_text()


def _checkpoint_dir(workdir) -> pathlib.Path:
  return pathlib.Path(workdir) / "heads" / "ppnet" / "checkpoints"


def _steps(workdir) -> list:
  directory = _checkpoint_dir(workdir)
  return sorted(int(p.name) for p in directory.iterdir() if p.name.isdigit()) if directory.is_dir() else []


def test_sigterm_checkpoints_the_step_in_flight_exits_143_and_a_restart_resumes_it(tmp_path):
  tfds_dir = tmp_path / "tfds"
  workdir = tmp_path / "terminated"
  proc, log = _start(workdir, tfds_dir)
  deadline = time.monotonic() + _WAIT_S
  while not _steps(workdir):
    assert proc.poll() is None, "train.py ended before writing its first checkpoint"
    assert time.monotonic() < deadline, "no checkpoint appeared"
    time.sleep(_POLL_S)
  proc.send_signal(signal.SIGTERM)
  rc, text = _finish(proc, log, workdir)
  print(text.strip().splitlines()[-1])
  assert rc == 128 + signal.SIGTERM, text[-3000:]
  assert "Traceback" not in text
  saved = int(re.search(r"heads/ppnet: SIGTERM received; saved checkpoint step (\d+)", text).group(1))
  last_logged = max(int(s) for s in re.findall(r"heads/ppnet: step (\d+)/", text))
  assert saved == last_logged < NUM_STEPS  # the step in flight, not only the last periodic checkpoint
  assert saved in _steps(workdir)

  rc, resumed = _finish(*_start(workdir, tfds_dir), workdir)
  assert rc == 0, resumed[-3000:]
  assert f"heads/ppnet: resumed from step {saved}" in resumed
  assert f"heads/ppnet: step {saved + 1}/{NUM_STEPS}" in resumed and f"step {saved}/{NUM_STEPS}" not in resumed

  assert NUM_STEPS in _steps(workdir)
  assert (workdir / "heads" / "ppnet" / "prototype_gallery.png").exists()  # the push ran after the resume


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
