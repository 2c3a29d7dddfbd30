"""Orbax checkpoints of a training run: the `TrainState` plus the data-iterator position.

Layout: `WORKDIR/<subdir>/<step>/{state, data}` (subdir "checkpoints" for the diffusion model);
Orbax writes each step to a temporary directory and renames it when complete, so a crash never
leaves a half-written "latest" checkpoint. Saves are synchronous: a save returns once the step
is on disk, so the next (donating) train step can never race it.
"""

import os
from typing import Any, Optional, Tuple

import jax
import orbax.checkpoint as ocp

DIFFUSION_SUBDIR = "checkpoints"


class Checkpointer:
  """Keeps the last `keep` checkpoints under `directory`."""

  def __init__(self, directory: str, keep: int):
    self.directory = os.path.abspath(directory)
    self._manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True, enable_async_checkpointing=False))

  def latest_step(self) -> Optional[int]:
    return self._manager.latest_step()

  def save(self, step: int, state, data_position: dict) -> None:
    """Writes `state` (any pytree of arrays) and `data_position` (JSON-able dict) as checkpoint `step`."""
    self._manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), data=ocp.args.JsonSave(data_position)), force=True)
    self._manager.wait_until_finished()

  def restore(self, step: int, like) -> Tuple[Any, dict]:
    """Restores checkpoint `step` into the structure, dtypes and shardings of `like` (a live state)."""
    abstract = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, like)
    try:
      out = self._manager.restore(step, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(abstract), data=ocp.args.JsonRestore()))
    except (ValueError, KeyError, TypeError) as e:
      raise ValueError(f"checkpoint {self.directory}/{step} does not fit the configured model/optimizer "
                       f"(config changed since it was written? use a fresh --workdir): {e}") from e
    return out.state, out.data

  def close(self) -> None:
    self._manager.close()


def load_inference_params(workdir: str, subdir: str = DIFFUSION_SUBDIR) -> Tuple[Any, int]:
  """`(ema_params, step)` of the latest checkpoint in `WORKDIR/<subdir>` (arrays on the default device).

  Raises FileNotFoundError naming the directory when it holds no checkpoint.
  """
  directory = os.path.abspath(os.path.join(workdir, subdir))
  if not os.path.isdir(directory):
    raise FileNotFoundError(f"no checkpoint directory {directory} (train first: python train.py ...)")
  manager = ocp.CheckpointManager(directory)
  step = manager.latest_step()
  if step is None:
    raise FileNotFoundError(f"{directory} holds no complete checkpoint (train first: python train.py ...)")
  restored = manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore()))
  manager.close()
  return restored.state["ema_params"], int(step)
