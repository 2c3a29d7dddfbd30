#!/usr/bin/env python3
"""Diagnostic for docs/PERFORMANCE.md: the prototype distance kernel at the paper's sizes (16 feature
maps of 32x32x128, 30 prototypes of 1x1x128), as the library computes it (`l2_distances`: vmap over
images of ReLU(‖z‖² − 2 z·p + ‖p‖²)), against its bare matmul `[N·H·W, 128] x [128, 30]` (a lower
bound for any formulation) and a square 2048³ matmul (the peak).

  python benchmarks/proto_kernel_variants.py [--reps 30]
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import common  # noqa: E402

from mrixai_jax.models import proto_engine  # noqa: E402



def main():
  ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  ap.add_argument("--reps", type=int, default=30)
  args = ap.parse_args()
  rng = np.random.default_rng(0)
  z = jnp.asarray(1.0 / (1.0 + np.exp(-rng.standard_normal((16, 32, 32, 128)))), jnp.float32)
  protos = jnp.asarray(rng.uniform(0, 1, (30, 1, 1, 128)), jnp.float32)
  square = jnp.asarray(rng.standard_normal((2048, 2048)), jnp.float32)
  kernel_flops = proto_engine.distance_flops(z.shape, protos.shape)
  rows = [
      ("library l2_distances", proto_engine.l2_distances, (z, protos), kernel_flops),
      ("bare matmul [16384,128]x[128,30]", jax.jit(lambda a, p: a.reshape(-1, 128) @ p.reshape(30, 128).T),
       (z, protos), 2.0 * 16384 * 128 * 30),
      ("square matmul 2048^3", jax.jit(jnp.dot), (square, square), 2.0 * 2048 ** 3),
  ]
  for name, fn, fargs, flops in rows:
    s = common.median_call_seconds(fn, *fargs, reps=args.reps)
    print(f"{name:34s} {s * 1e3:8.3f} ms  {flops / s / 1e9:6.0f} GFLOP/s", flush=True)


if __name__ == "__main__":
  main()
