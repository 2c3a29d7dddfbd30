"""The two ways a training run stops early, shared by the diffusion loop and the prototype heads' runner.

Stop signals: while `StopSignals` is active, SIGTERM/SIGINT only set a flag. The trainer calls
`StopSignals.raise_if_received` between steps: it saves a checkpoint of the step just finished
(unless that step is already saved) and raises `Interrupted`, which `train.py` turns into exit code
128 + signal (143 for SIGTERM, 130 for SIGINT). The next start resumes from that checkpoint; a
checkpoint is never written in the middle of a step.

Non-finite numbers: the jitted step reports `all_finite(loss, grads, params)`; `check_finite`
raises `NonFiniteError` naming the step and the last good checkpoint before anything of that step
is saved.
"""

import signal
import threading
from typing import Callable, Optional

import jax
import jax.numpy as jnp


class NonFiniteError(RuntimeError):
  """The loss, the gradients or the updated parameters became NaN/Inf."""


class Interrupted(Exception):
  """SIGTERM/SIGINT stopped training after checkpointing `step`; `exit_code` is 128 + the signal number."""

  def __init__(self, message: str, signum: int, step: int):
    super().__init__(message)
    self.exit_code = 128 + signum
    self.step = step


class StopSignals:
  """Context manager: while active, SIGTERM/SIGINT set `received` (the signal number) instead of killing.

  Only installs handlers on the main thread (signal handlers cannot be set elsewhere); restores the
  previous handlers on exit.
  """

  SIGNALS = (signal.SIGTERM, signal.SIGINT)

  def __init__(self):
    self.received = None
    self._previous = {}

  def _handle(self, signum, frame):
    del frame
    self.received = signum

  def __enter__(self):
    if threading.current_thread() is threading.main_thread():
      self._previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
    return self

  def __exit__(self, *exc):
    for s, handler in self._previous.items():
      signal.signal(s, handler)
    return False

  def raise_if_received(self, name: str, step: int, save: Optional[Callable[[], None]], directory: str) -> None:
    """If a stop signal came: `save()` (None: `step` is already checkpointed), then raise `Interrupted`.

    name: the trainer in messages (e.g. "diffusion"); directory: where the checkpoints are.
    """
    if self.received is None:
      return
    if save is not None:
      save()
    signame = signal.Signals(self.received).name
    raise Interrupted(f"{name}: {signame} received; saved checkpoint step {step} in {directory}; "
                      f"run the same command again to resume", self.received, step)


def all_finite(*trees) -> jax.Array:
  """Scalar bool array: every leaf of `trees` is free of NaN/Inf (traceable under jit)."""
  finite = jnp.bool_(True)
  for leaf in jax.tree_util.tree_leaves(trees):
    finite &= jnp.all(jnp.isfinite(leaf))
  return finite


def check_finite(metrics: dict, name: str, step: int, last_saved: Optional[int], directory: str, hint: str) -> dict:
  """Host `metrics` without their `finite` flag; raises `NonFiniteError` naming `step` when it is false.

  last_saved: the newest checkpoint step (None: none yet); hint: what to try (e.g. a lower learning rate).
  """
  metrics = dict(metrics)
  if metrics.pop("finite"):
    return metrics
  saved = f"step {last_saved} in {directory}" if last_saved is not None else "none yet"
  raise NonFiniteError(f"{name}: non-finite loss, gradients or parameters at step {step} "
                       f"(loss {metrics.get('loss')}); stopped. Last good checkpoint: {saved}. {hint}")
