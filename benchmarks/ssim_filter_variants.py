#!/usr/bin/env python3
"""Diagnostic for docs/PERFORMANCE.md: SSIM's separable 11-tap Gaussian 'valid' filter on
[8, 256, 256, 1] float32, as the library computes it (two depthwise `conv_general_dilated` with
one channel) against two formulations of the same sum: 11 shifted multiply-adds per axis (one
fused elementwise loop) and banded (Toeplitz) matmuls. SSIM runs this filter 5 times per call.

  python benchmarks/ssim_filter_variants.py [--reps 20]
"""

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from mrixai_jax.metrics import image_quality  # noqa: E402


def shifted_adds(x, taps):
  """sum_i taps[i] * x shifted by i, along H then W ('valid')."""
  k = taps.shape[0]
  h, w = x.shape[1] - k + 1, x.shape[2] - k + 1
  y = sum(taps[i] * x[:, i:i + h] for i in range(k))
  return sum(taps[i] * y[:, :, i:i + w] for i in range(k))


def banded_matmuls(x, taps):
  """T x Tᵀ with T the [H-k+1, H] band matrix of the taps (square images)."""
  k, n = taps.shape[0], x.shape[1]
  rows = jnp.arange(n - k + 1)[:, None]
  band = jnp.zeros((n - k + 1, n), x.dtype).at[rows, rows + jnp.arange(k)].set(jnp.broadcast_to(taps, (n - k + 1, k)))
  return jnp.einsum("ih,bhwc,jw->bijc", band, x, band)


def main():
  ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  ap.add_argument("--reps", type=int, default=20)
  args = ap.parse_args()
  taps = jnp.asarray(image_quality.gaussian_window(11, 1.5), jnp.float32)
  x = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (8, 256, 256, 1)), jnp.float32)
  variants = {
      "library (conv_general_dilated)": jax.jit(lambda v: image_quality._filter_valid(v, taps)),  # pylint: disable=protected-access
      "shifted multiply-adds": jax.jit(lambda v: shifted_adds(v, taps)),
      "banded matmuls": jax.jit(lambda v: banded_matmuls(v, taps)),
  }
  ref = np.asarray(variants["library (conv_general_dilated)"](x))
  for name, fn in variants.items():
    err = float(np.abs(np.asarray(fn(x)) - ref).max())
    times = []
    for _ in range(args.reps):
      t0 = time.perf_counter()
      fn(x).block_until_ready()
      times.append(time.perf_counter() - t0)
    print(f"{name:32s} median {statistics.median(times) * 1e3:7.2f} ms  "
          f"(min {min(times) * 1e3:.2f})  max abs err vs library {err:.1e}", flush=True)


if __name__ == "__main__":
  main()
