"""Progress-line helpers shared by training, sampling and the study."""

import time

from absl import logging

LOG_EVERY_S = 10.0  # seconds between progress lines of a batched pass


def format_duration(seconds: float) -> str:
  """`12m05s`, or `1h02m03s` from an hour on (ETAs in progress lines)."""
  seconds = int(round(seconds))
  if seconds >= 3600:
    return f"{seconds // 3600}h{seconds // 60 % 60:02d}m{seconds % 60:02d}s"
  return f"{seconds // 60}m{seconds % 60:02d}s"


def batch_slices(num: int, batch_size: int, label: str, final_line: bool = True):
  """Yields the row `slice`s of a pass over `num` images in batches of `batch_size` (the last one
  shorter). Once the caller is done with a batch, logs `label: done/num images, rate img/s, ETA`
  if `LOG_EVERY_S` seconds passed since the last line, and after the last batch if `final_line`
  (False: passes shorter than `LOG_EVERY_S` stay silent)."""
  start = last = time.perf_counter()
  for first in range(0, num, batch_size):
    rows = slice(first, min(num, first + batch_size))
    yield rows
    now = time.perf_counter()
    if now - last >= LOG_EVERY_S or (final_line and rows.stop == num):
      rate = rows.stop / max(now - start, 1e-9)
      logging.info("%s: %d/%d images, %.1f img/s, ETA %s", label, rows.stop, num, rate,
                   format_duration((num - rows.stop) / max(rate, 1e-9)))
      last = now
