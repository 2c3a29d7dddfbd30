"""Throughput of the prototype similarity kernel against this machine's matmul rate.

The kernel is `proto_engine.l2_distances` (one jit-compiled ‖z‖² − 2 z·p + ‖p‖² over the batch with
the ReLU clamp) followed by log similarity and min-pooling — what every head runs per image. Its
GFLOP/s is compared with (a) `jnp.dot` on the same [cells, D] × [D, P] product and (b) a large
square `jnp.dot` (the machine's practical matmul peak). Prints a table; `--json PATH` also writes it.

Usage: python -m benchmarks.bench_prototypes [--repeats 20] [--json out.json]
"""

import argparse
import json

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import common
from mrixai_jax.models import proto_engine as pe

# (name, batch, cells per side, prototype dim D, prototypes P)
SHAPES = (("demo_64px_conv3_3", 16, 16, 64, 12),
          ("paper_256px_conv4_3", 16, 32, 128, 30),
          ("wide_pool_2000", 8, 28, 128, 2000))
SQUARE = 2048


@jax.jit
def similarity_kernel(z, prototypes):
  dmin, _ = pe.min_pool(pe.l2_distances(z, prototypes))
  return pe.log_similarity(dmin)


@jax.jit
def _dot(a, b):
  return jnp.dot(a, b)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--repeats", type=int, default=20)
  parser.add_argument("--json", default="")
  args = parser.parse_args()
  rng = np.random.default_rng(0)
  square = jnp.asarray(rng.standard_normal((SQUARE, SQUARE)), jnp.float32)
  peak = 2 * SQUARE ** 3 / common.median_call_seconds(_dot, square, square, reps=max(3, args.repeats // 4)) / 1e9
  rows = []
  for name, batch, cells, dim, num in SHAPES:
    z = jnp.asarray(rng.uniform(size=(batch, cells, cells, dim)), jnp.float32)
    p = jnp.asarray(rng.uniform(size=(num, 1, 1, dim)), jnp.float32)
    seconds = common.median_call_seconds(similarity_kernel, z, p, reps=args.repeats)
    flops = pe.distance_flops(z.shape, p.shape)
    a, b = z.reshape(-1, dim), p.reshape(num, dim).T
    dot_rate = 2 * a.shape[0] * dim * num / common.median_call_seconds(_dot, a, b, reps=args.repeats) / 1e9
    rate = flops / seconds / 1e9
    rows.append({"workload": name, "shape": f"B{batch} {cells}x{cells} D{dim} P{num}", "ms": 1e3 * seconds,
                 "images_per_s": batch / seconds, "gflops": rate, "same_shape_dot_gflops": dot_rate,
                 "fraction_of_same_dot": rate / dot_rate, "fraction_of_peak_dot": rate / peak})
  print(f"device: {jax.devices()[0].device_kind}  square {SQUARE} jnp.dot: {peak:.1f} GFLOP/s")
  print(f"{'workload':22s} {'shape':26s} {'ms':>8s} {'img/s':>9s} {'GFLOP/s':>8s} {'dot same':>9s} "
        f"{'/dot':>6s} {'/peak':>6s}")
  for r in rows:
    print(f"{r['workload']:22s} {r['shape']:26s} {r['ms']:8.3f} {r['images_per_s']:9.1f} {r['gflops']:8.1f} "
          f"{r['same_shape_dot_gflops']:9.1f} {r['fraction_of_same_dot']:6.2f} {r['fraction_of_peak_dot']:6.2f}")
  if args.json:
    with open(args.json, "w", encoding="utf-8") as f:
      json.dump({"device": jax.devices()[0].device_kind, "peak_dot_gflops": peak, "workloads": rows}, f, indent=2)


if __name__ == "__main__":
  main()
