"""Progress-line numbers shared by the diffusion loop and the prototype heads' runner."""

import time

from mrixai_jax import progress


class MetricWindow:
  """Means of per-step scalar metrics since the last progress line, the step rate and the ETA."""

  def __init__(self, first_step: int, num_steps: int):
    self._num_steps = num_steps
    self._restart(first_step)

  def _restart(self, step: int) -> None:
    self._sums, self._count, self._start_step, self._start_time = {}, 0, step, time.perf_counter()

  def add(self, metrics: dict) -> None:
    """Adds one step's `{name: float}`."""
    for k, v in metrics.items():
      self._sums[k] = self._sums.get(k, 0.0) + v
    self._count += 1

  def close(self, step: int) -> tuple:
    """`(means, steps per second, ETA text)` of the window ending at `step`; starts the next window."""
    rate = (step - self._start_step) / max(time.perf_counter() - self._start_time, 1e-9)
    means = {k: v / max(self._count, 1) for k, v in self._sums.items()}
    eta = progress.format_duration((self._num_steps - step) / rate) if rate > 0 else "?"
    self._restart(step)
    return means, rate, eta
