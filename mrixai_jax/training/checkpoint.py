"""Orbax checkpoints of a training run: the `TrainState` plus the data-iterator position.

Layout: `WORKDIR/<subdir>/<step>/{state, data}` (subdir "checkpoints" for the diffusion model);
Orbax writes each step to a temporary directory and renames it when complete, so a crash never
leaves a half-written "latest" checkpoint. Saves are synchronous: a save returns once the step
is on disk, so the next (donating) train step can never race it. Old steps beyond `keep` are
deleted only after the new step is committed (Orbax `CheckpointManager._finalize` runs the
deleter after waiting for the commit), so a crash mid-save leaves the previous ones intact.

Corruption: after each save, `<step>/sha256sums.json` records a SHA-256 of every file of the step
(TensorStore has no checksums: bytes garbled inside an array chunk would otherwise restore as wrong
numbers). Restoring tries the newest step first and falls back to older ones; each unreadable
step is reported in one warning line naming it. Training (`Checkpointer.restore_latest`) then
renames it to `<step>.unreadable` (kept for inspection, ignored by Orbax) so that step can be
written again; `load_inference_params` only reads.
"""

import hashlib
import json
import os
from typing import Any, Callable, Optional, Tuple

import jax
import orbax.checkpoint as ocp
from absl import logging

from mrixai_jax import atomic
from mrixai_jax import errors
from mrixai_jax import workdir as workdir_lib

DIFFUSION_SUBDIR = workdir_lib.CHECKPOINTS_SUBDIR
CHECKSUMS = "sha256sums.json"
_CHUNK = 1 << 20


class CheckpointError(errors.UserError):
  """No checkpoint in a directory can be restored."""


def _file_digests(step_dir: str) -> dict:
  """`{relative path: sha256 hex}` of every file under `step_dir` except the checksum file itself."""
  digests = {}
  for root, _, names in os.walk(step_dir):
    for name in names:
      path = os.path.join(root, name)
      rel = os.path.relpath(path, step_dir)
      if rel == CHECKSUMS:
        continue
      h = hashlib.sha256()
      with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
          h.update(chunk)
      digests[rel] = h.hexdigest()
  return digests


def _verify(step_dir: str) -> None:
  """Raises ValueError naming the first file of `step_dir` that is missing or differs from its checksum.

  A step without a checksum file (killed between Orbax's commit and the checksum write) is accepted.
  """
  path = os.path.join(step_dir, CHECKSUMS)
  if not os.path.exists(path):
    return
  with open(path) as f:
    expected = json.load(f)
  actual = _file_digests(step_dir)
  for rel, digest in sorted(expected.items()):
    if actual.get(rel) != digest:
      raise ValueError(f"{rel} is {'missing' if rel not in actual else 'changed'} (SHA-256 mismatch)")


def _restore_newest_readable(manager: ocp.CheckpointManager, directory: str,
                             restore: Callable[[int], Any]) -> Tuple[Optional[int], Any, list]:
  """`(step, restore(step), unreadable newer steps)` for the newest step of `manager` that restores.

  `(None, None, [])` when it has no step. Each step whose restore raises is logged as unreadable;
  when every step fails (typically a changed config, not corruption), raises `CheckpointError`
  naming the directory and the newest step's error.
  """
  steps = sorted(manager.all_steps(), reverse=True)
  first_error, unreadable = None, []
  for step in steps:
    try:
      _verify(os.path.join(directory, str(step)))
      return step, restore(step), unreadable
    except Exception as e:  # pylint: disable=broad-except  (Orbax/TensorStore raise many types for bad files)
      message = f"{type(e).__name__}: {(str(e).splitlines() or [''])[0][:200]}"
      logging.warning("checkpoint step %d in %s is unreadable (%s); trying an older one", step, directory, message)
      first_error = first_error or message
      unreadable.append(step)
  if first_error is not None:
    raise CheckpointError(f"no readable checkpoint in {directory} (tried steps {steps}); newest failed with "
                          f"{first_error}. If the config changed since they were written, use a fresh --workdir.")
  return None, None, []


class Checkpointer:
  """Keeps the last `keep` checkpoints under `directory`."""

  def __init__(self, directory: str, keep: int):
    self.directory = os.path.abspath(directory)
    self._keep = keep
    self._manager = self._open()

  def _open(self) -> ocp.CheckpointManager:
    return ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(max_to_keep=self._keep, create=True, enable_async_checkpointing=False))

  def latest_step(self) -> Optional[int]:
    return self._manager.latest_step()

  def save(self, step: int, state, data_position: dict) -> None:
    """Writes `state` (any pytree of arrays) and `data_position` (JSON-able dict) as checkpoint `step`."""
    self._manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), data=ocp.args.JsonSave(data_position)), force=True)
    self._manager.wait_until_finished()
    if jax.process_index() == 0:
      step_dir = os.path.join(self.directory, str(step))
      atomic.write_json(os.path.join(step_dir, CHECKSUMS), _file_digests(step_dir))

  def restore_latest(self, like) -> Tuple[Optional[int], Any, Optional[dict]]:
    """`(step, state, data_position)` of the newest readable checkpoint, `(None, like, None)` if there is none.

    `state` takes the structure, dtypes and shardings of `like` (a live state). Unreadable newer steps
    are logged and, once an older one has restored, renamed to `<step>.unreadable`.
    """
    abstract = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, like)

    def restore(step):
      return self._manager.restore(step, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(abstract), data=ocp.args.JsonRestore()))

    step, out, unreadable = _restore_newest_readable(self._manager, self.directory, restore)
    for bad in unreadable:
      os.replace(os.path.join(self.directory, str(bad)), os.path.join(self.directory, f"{bad}.unreadable"))
    if unreadable:  # the manager caches its step list
      self._manager.close()
      self._manager = self._open()
    return (None, like, None) if step is None else (step, out.state, out.data)

  def close(self) -> None:
    self._manager.close()


def load_inference_params(workdir: str, subdir: str = DIFFUSION_SUBDIR, tree: str = "ema_params") -> Tuple[Any, int]:
  """`(state.<tree>, step)` of the latest checkpoint in `WORKDIR/<subdir>` (arrays on the default device;
  `tree`: "ema_params" for the diffusion model, "params" for a task without EMA).

  Falls back to older steps when the newest is unreadable (see the module docstring). Raises
  FileNotFoundError naming the directory when it holds no checkpoint, CheckpointError when none restores.
  """
  directory = os.path.abspath(os.path.join(workdir, subdir))
  if not os.path.isdir(directory):
    raise FileNotFoundError(f"no checkpoint directory {directory} (train first: python train.py ...)")
  manager = ocp.CheckpointManager(directory)
  try:
    step, restored, _ = _restore_newest_readable(manager, directory, lambda step: manager.restore(
        step, args=ocp.args.Composite(state=ocp.args.StandardRestore())))
  finally:
    manager.close()
  if step is None:
    raise FileNotFoundError(f"{directory} holds no complete checkpoint (train first: python train.py ...)")
  return restored.state[tree], int(step)
