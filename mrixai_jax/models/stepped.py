"""Apply a batch function over a batch a few rows at a time (`lax.map`).

On XLA:CPU a VGG16 pass over many 256² images keeps activations far larger than the caches
(conv1_2 of 16 images: 268 MB); the same pass over 1-2 images at a time runs 1.2-1.4x faster
(docs/PERFORMANCE.md, "LPIPS").
"""

import jax
import jax.numpy as jnp


def rows_per_step(cpu_rows: int, batch: int) -> int:
  """Rows per step for a batch of `batch`: `cpu_rows` (at least 1) on CPU, where small steps keep
  the activations in cache; the whole batch (one pass) on other backends."""
  return max(1, int(cpu_rows)) if jax.default_backend() == "cpu" else batch


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
