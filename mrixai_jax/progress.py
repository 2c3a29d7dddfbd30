"""Progress-line helpers shared by training, sampling and the study."""

import time

from absl import logging

LOG_EVERY_S = 30.0  # seconds between progress lines (training steps, batched passes)


class Throttle:
  """`due(final=False)`: True when LOG_EVERY_S passed since the last True (or since creation), and
  on `final`; the caller logs its progress line at INFO then (at DEBUG otherwise)."""

  def __init__(self):
    self._last = time.perf_counter()

  def due(self, final: bool = False) -> bool:
    now = time.perf_counter()
    if final or now - self._last >= LOG_EVERY_S:
      self._last = now
      return True
    return False

  def level(self, final: bool = False) -> int:
    """absl's INFO when `due(final)`, else DEBUG (shown with --verbosity=1)."""
    return logging.INFO if self.due(final) else logging.DEBUG


def format_duration(seconds: float) -> str:
  """`12m05s`, or `1h02m03s` from an hour on (ETAs in progress lines)."""
  seconds = int(round(seconds))
  if seconds >= 3600:
    return f"{seconds // 3600}h{seconds // 60 % 60:02d}m{seconds % 60:02d}s"
  return f"{seconds // 60}m{seconds % 60:02d}s"


def batch_slices(num: int, batch_size: int, label: str, final_line: bool = True):
  """Yields the row `slice`s of a pass over `num` images in batches of `batch_size` (the last one
  shorter). Once the caller is done with a batch, logs `label: done/num images, rate img/s, ETA`
  at INFO if `LOG_EVERY_S` seconds passed since the last line, and after the last batch if
  `final_line`: at INFO when the pass logged a line before, at DEBUG when it was shorter than
  `LOG_EVERY_S` (shown with --verbosity=1)."""
  start = time.perf_counter()
  throttle = Throttle()
  logged = False
  for first in range(0, num, batch_size):
    rows = slice(first, min(num, first + batch_size))
    yield rows
    periodic = throttle.due()
    if periodic or (final_line and rows.stop == num):
      rate = rows.stop / max(time.perf_counter() - start, 1e-9)
      logging.log(logging.INFO if periodic or logged else logging.DEBUG, "%s: %d/%d images, %.1f img/s, ETA %s",
                  label, rows.stop, num, rate, format_duration((num - rows.stop) / max(rate, 1e-9)))
      logged = logged or periodic
