"""Corrupted checkpoints: the newest unreadable step is reported and training/inference fall back to an older one."""

import logging
import os
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mrixai_jax.training import checkpoint, loop
from tests import tiny_task


def _largest_array_file(step_dir: pathlib.Path) -> pathlib.Path:
  return max((p for p in (step_dir / "state").rglob("*") if p.is_file() and "ocdbt.process" in str(p)),
             key=lambda p: p.stat().st_size)


def _truncate(step_dir):
  f = _largest_array_file(step_dir)
  os.truncate(f, f.stat().st_size // 2)


def _garble_array_bytes(step_dir):  # TensorStore alone restores this silently as different numbers
  f = _largest_array_file(step_dir)
  with open(f, "r+b") as h:
    h.seek(f.stat().st_size // 2)
    h.write(bytes(255 - b for b in h.read(16)))


def _garble_metadata(step_dir):
  with open(step_dir / "state" / "_METADATA", "r+b") as h:
    h.seek(10)
    h.write(b"#$%^&*")


def _delete_file(step_dir):
  _largest_array_file(step_dir).unlink()


CORRUPTIONS = [_truncate, _garble_array_bytes, _garble_metadata, _delete_file]


def _run(workdir, num_steps):
  """Constant learning rate: a 4-step run is the first 4 steps of a 6-step run."""
  task = tiny_task.build(tiny_task.quadratic, num_steps=num_steps, keep_checkpoints=3, lr_schedule="constant")
  return jax.device_get(loop.run(task, str(workdir)))


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
  """A 6-step run without interruption: its final state is the reference."""
  workdir = tmp_path_factory.mktemp("straight")
  return _run(workdir, 6)


def _four_steps(workdir):
  _run(workdir, 4)
  return pathlib.Path(workdir) / "checkpoints"


@pytest.mark.parametrize("corrupt", CORRUPTIONS, ids=lambda f: f.__name__.strip("_"))
def test_newest_corrupted_checkpoint_falls_back_to_previous(tmp_path, caplog, straight, corrupt):
  directory = _four_steps(tmp_path)
  assert sorted(p.name for p in directory.iterdir()) == ["2", "3", "4"]
  corrupt(directory / "4")

  with caplog.at_level(logging.WARNING):
    ema, step = checkpoint.load_inference_params(str(tmp_path))
  assert step == 3
  lines = [r.getMessage() for r in caplog.records if "unreadable" in r.getMessage()]
  print(lines)
  assert len(lines) == 1 and f"checkpoint step 4 in {directory} is unreadable" in lines[0]
  assert (directory / "4").is_dir()  # inference only reads

  caplog.clear()
  with caplog.at_level(logging.INFO):
    resumed = _run(tmp_path, 6)
  assert any("resumed from step 3" in r.getMessage() for r in caplog.records)
  assert (directory / "4.unreadable").is_dir()  # set aside, not deleted
  assert sorted(p.name for p in directory.iterdir()) == ["4", "4.unreadable", "5", "6"]
  for a, b in zip(jax.tree_util.tree_leaves(resumed), jax.tree_util.tree_leaves(straight)):
    np.testing.assert_array_equal(a, b)


def test_every_checkpoint_unreadable_is_one_clear_error_and_nothing_is_moved(tmp_path):
  directory = _four_steps(tmp_path)
  for step in ("2", "3", "4"):
    _truncate(directory / step)
  with pytest.raises(checkpoint.CheckpointError, match=r"no readable checkpoint in .*tried steps \[4, 3, 2\]"):
    _run(tmp_path, 6)
  assert sorted(p.name for p in directory.iterdir()) == ["2", "3", "4"]


def test_failed_save_keeps_the_older_checkpoint(tmp_path):
  saver = checkpoint.Checkpointer(str(tmp_path), keep=1)
  saver.save(1, {"w": jnp.ones(3)}, {"epoch": 0, "batch": 1})
  with pytest.raises(Exception):
    saver.save(2, {"w": object()}, {"epoch": 0, "batch": 2})  # not an array: the save fails before its commit
  saver.close()
  assert checkpoint.Checkpointer(str(tmp_path), keep=1).restore_latest({"w": jnp.zeros(3)})[0] == 1
