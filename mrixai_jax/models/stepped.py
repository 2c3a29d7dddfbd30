"""Apply a batch function over a batch a few rows at a time (`lax.map`).

How many rows a step takes on each backend: `mrixai_jax.cpu_steps`.
"""

import jax
import jax.numpy as jnp


def map_in_steps(fn, arrays: tuple, per_step: int):
  """`fn(*[per_step, ...] arrays) -> [per_step, ...]` over `arrays` (each `[N, ...]`) -> `[N, ...]`.

  N is zero-padded to a whole number of steps and the padding cut from the result; with
  `per_step >= N`, one call of `fn` on the whole batch.
  """
  n = arrays[0].shape[0]
  if per_step >= n:
    return fn(*arrays)
  steps = -(-n // per_step)
  padded = [jnp.pad(a, ((0, steps * per_step - n),) + ((0, 0),) * (a.ndim - 1)) for a in arrays]
  stacked = [a.reshape(steps, per_step, *a.shape[1:]) for a in padded]
  out = jax.lax.map(lambda xs: fn(*xs), stacked)
  return out.reshape(steps * per_step, *out.shape[2:])[:n]
