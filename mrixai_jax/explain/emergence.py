"""When does the explanation appear along the denoising trajectory? F of x̂0 at the captured steps,
summarised by the step at which it first reaches half its final value."""

import numpy as np


def half_rise_step(curve, steps) -> float:
  """Sampler step (linearly interpolated between captured steps) at which `curve: [K]` (e.g. mean F
  of x̂0 at `steps: [K]`, increasing, last = the final sample) first reaches half its last value;
  NaN when the last value is not positive (nothing emerges to reach half of)."""
  curve, steps = np.asarray(curve, np.float64), np.asarray(steps, np.float64)
  final = curve[-1]
  if not final > 0:
    return float("nan")
  half = final / 2.0
  k = int(np.argmax(curve >= half))  # exists: the last value reaches it
  if k == 0:
    return float(steps[0])
  fraction = (half - curve[k - 1]) / (curve[k] - curve[k - 1])
  return float(steps[k - 1] + fraction * (steps[k] - steps[k - 1]))
