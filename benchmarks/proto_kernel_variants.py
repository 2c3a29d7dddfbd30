#!/usr/bin/env python3
"""Diagnostic for docs/PERFORMANCE.md: the prototype distance kernel at the paper's sizes (16 feature
maps of 32x32x128, 30 prototypes of 1x1x128), as the library computes it (`l2_distances`: one
matmul over the batch, −2 folded into the prototype matrix) against other formulations of the same
distances, the bare matmuls (lower bounds for any formulation, both operand orders) and a square
2048³ matmul (the peak). Variants alternate over rounds (medians of per-round medians), so load
from other processes hits them alike; "CPU" is the process's CPU seconds per wall second while
the variant runs (2.0 = both cores busy). Second table: the kernels on a different feature batch
per call (16 batches of 8 MB cycled, as a push over a dataset reads them) instead of one batch
that stays in the caches.

  python -m benchmarks.proto_kernel_variants [--rounds 5] [--reps 20]
"""

import argparse
import functools
import os
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import common

from mrixai_jax.models import proto_engine

HIGHEST = jax.lax.Precision.HIGHEST


def vmapped_einsums(z, p):
  """The library before: per image ReLU(‖z‖² − 2 z·p + ‖p‖²), `jax.vmap` over the batch."""
  flat = p.reshape(p.shape[0], -1)

  def one(zi):
    z2 = jnp.sum(zi * zi, axis=-1, keepdims=True)
    return jax.nn.relu(z2 - 2.0 * jnp.einsum("hwf,pf->hwp", zi, flat, precision=HIGHEST) + jnp.sum(flat * flat, -1))
  return jax.vmap(one)(z)


def one_matmul(z, p):
  """One matmul over the batch, −2 applied to its [N·H·W, P] output."""
  rows, flat = z.reshape(-1, z.shape[-1]), p.reshape(p.shape[0], -1)
  z2 = jnp.sum(rows * rows, axis=-1, keepdims=True)
  out = z2 - 2.0 * jnp.dot(rows, flat.T, precision=HIGHEST) + jnp.sum(flat * flat, -1)
  return jax.nn.relu(out).reshape(*z.shape[:3], -1)


def augmented(z, p):
  """‖p‖² and −2 folded into the prototype matrix: [z, 1]·[−2p; ‖p‖²]ᵀ (+ ‖z‖²)."""
  rows, flat = z.reshape(-1, z.shape[-1]), p.reshape(p.shape[0], -1)
  weights = jnp.concatenate([-2.0 * flat, jnp.sum(flat * flat, -1, keepdims=True)], axis=1)
  ones = jnp.ones((rows.shape[0], 1), rows.dtype)
  out = jnp.sum(rows * rows, axis=-1, keepdims=True) + jnp.dot(jnp.concatenate([rows, ones], 1), weights.T,
                                                               precision=HIGHEST)
  return jax.nn.relu(out).reshape(*z.shape[:3], -1)


def prototypes_lhs(z, p, transpose_back=True):
  """Prototypes on the LHS, wide [P, N·H·W] output; transposed back to the API's [N, H, W, P]."""
  rows, flat = z.reshape(-1, z.shape[-1]), p.reshape(p.shape[0], -1)
  out = jax.nn.relu(jnp.sum(rows * rows, -1) - 2.0 * jnp.dot(flat, rows.T, precision=HIGHEST)
                    + jnp.sum(flat * flat, -1, keepdims=True))
  return out.T.reshape(*z.shape[:3], -1) if transpose_back else out


def main():
  ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  ap.add_argument("--rounds", type=int, default=5)
  ap.add_argument("--reps", type=int, default=20)
  args = ap.parse_args()
  rng = np.random.default_rng(0)
  z = jnp.asarray(1.0 / (1.0 + np.exp(-rng.standard_normal((16, 32, 32, 128)))), jnp.float32)
  protos = jnp.asarray(rng.uniform(0, 1, (30, 1, 1, 128)), jnp.float32)
  square = jnp.asarray(rng.standard_normal((2048, 2048)), jnp.float32)
  kernel_flops = proto_engine.distance_flops(z.shape, protos.shape)
  bare_flops = 2.0 * 16384 * 128 * 30
  rows = [  # name, function, args, FLOPs, checked against the library
      ("library l2_distances", proto_engine.l2_distances, (z, protos), kernel_flops, True),
      ("vmap of per-image einsums (before)", jax.jit(vmapped_einsums), (z, protos), kernel_flops, True),
      ("one matmul, -2 on the output", jax.jit(one_matmul), (z, protos), kernel_flops, True),
      ("augmented [z,1].[-2p; |p|^2]", jax.jit(augmented), (z, protos), kernel_flops, True),
      ("prototypes on LHS, transposed", jax.jit(prototypes_lhs), (z, protos), kernel_flops, True),
      ("prototypes on LHS, [P,N] (no API)", jax.jit(lambda a, b: prototypes_lhs(a, b, False)), (z, protos),
       kernel_flops, False),
      ("bare matmul [16384,128]x[128,30]", jax.jit(lambda a, b: jnp.dot(a.reshape(-1, 128), b.reshape(30, 128).T)),
       (z, protos), bare_flops, False),
      ("bare matmul [30,128]x[128,16384]", jax.jit(lambda a, b: jnp.dot(b.reshape(30, 128), a.reshape(-1, 128).T)),
       (z, protos), bare_flops, False),
      ("square matmul 2048^3 (peak)", jax.jit(jnp.dot), (square, square), 2.0 * 2048 ** 3, False),
  ]
  ref = np.asarray(proto_engine.l2_distances(z, protos))
  seconds = common.alternating_rounds({name: functools.partial(fn, *fargs) for name, fn, fargs, _, _ in rows},
                                      args.rounds, reps=args.reps)
  peak = 2.0 * 2048 ** 3 / statistics.median(seconds[rows[-1][0]])
  print(f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}")
  for name, fn, fargs, flops, check in rows:
    s = statistics.median(seconds[name])
    err = f"{float(np.abs(np.asarray(fn(*fargs)) - ref).max()):.1e}" if check else "-"
    reps = max(int(0.5 / s), 3)
    c0, t0 = time.process_time(), time.perf_counter()
    for _ in range(reps):
      fn(*fargs).block_until_ready()
    cpu = (time.process_time() - c0) / (time.perf_counter() - t0)
    print(f"{name:36s} {s * 1e3:8.3f} ms  {flops / s / 1e9:6.0f} GFLOP/s  {flops / s / peak:6.1%} of peak  "
          f"CPU {cpu:4.2f}  max abs diff vs library {err}", flush=True)
  batches = [jnp.asarray(1.0 / (1.0 + np.exp(-rng.standard_normal(z.shape))), jnp.float32) for _ in range(16)]
  print("-- a different feature batch per call (16 x 8 MB cycled)")
  streamed = rows[:3] + rows[6:7]
  per_call = {name: [] for name, *_ in streamed}
  for r in range(args.rounds + 1):  # round 0 warms up (pages, compilation)
    for name, fn, _, _, _ in streamed if r % 2 == 0 else streamed[::-1]:
      t0 = time.perf_counter()
      for zb in batches:
        fn(zb, protos).block_until_ready()
      if r:
        per_call[name].append((time.perf_counter() - t0) / len(batches))
  for name, _, _, flops, _ in streamed:
    s = statistics.median(per_call[name])
    print(f"{name:36s} {s * 1e3:8.3f} ms  {flops / s / 1e9:6.0f} GFLOP/s  {flops / s / peak:6.1%} of peak", flush=True)

if __name__ == "__main__":
  main()
