#!/usr/bin/env python3
"""Diagnostic for docs/PERFORMANCE.md: where LPIPS-VGG's time goes at 256², batch 8 pairs (the
benchmark's `lpips_256_b8`: both images of each pair in one VGG16 batch of 16).

Times every VGG16 convolution (+ bias + ReLU, and the max-pool after it where there is one) as its
own jitted call on inputs of its real shape, the LPIPS head (unit normalisation, squared
difference, 1x1 linear layer, spatial mean) per tap; prints ms, GFLOP/s (2 per multiply-add) and
the share of the summed per-layer time. Then the whole `metrics.lpips` with VGG16 run over
`--pairs-per-step` pairs at a time (alternating rounds; speed-up per round against the whole batch).

  python -m benchmarks.lpips_layers [--reps 3] [--batch 8] [--size 256] [--pairs-per-step 1,2,4,8]
"""

import argparse
import functools
import importlib
import os
import statistics

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import common

from mrixai_jax.models import vgg

lpips_lib = importlib.import_module("mrixai_jax.metrics.lpips")  # the package attribute is the function


def conv_block(params, x, pool):
  y = nn.relu(nn.Conv(params["kernel"].shape[-1], (3, 3), padding=1).apply({"params": params}, x))
  return nn.max_pool(y, (2, 2), strides=(2, 2)) if pool else y


def head(lin_kernel, f, b):
  f = lpips_lib._unit_normalize(f)  # pylint: disable=protected-access
  diff = (f[:b] - f[b:]) ** 2
  d = nn.Conv(1, (1, 1), use_bias=False).apply({"params": {"kernel": lin_kernel}}, diff)
  return jnp.mean(d, axis=(1, 2, 3))


def main():
  ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  ap.add_argument("--reps", type=int, default=3)
  ap.add_argument("--batch", type=int, default=8)
  ap.add_argument("--size", type=int, default=256)
  ap.add_argument("--pairs-per-step", default="1,2,4,8", help="comma-separated; the batch size = whole batch")
  ap.add_argument("--rounds", type=int, default=3, help="rounds of the pairs-per-step comparison")
  args = ap.parse_args()
  params = lpips_lib._default_variables("auto", None)["params"]  # pylint: disable=protected-access
  rng = np.random.default_rng(0)
  b, s = args.batch, args.size
  pair = jnp.asarray(rng.uniform(-1, 1, (2 * b, s, s, 1)), jnp.float32)
  x = vgg.to_scaled_rgb(pair)
  rows, taps = [], {}
  for name, channels in vgg.LAYERS:
    p = params["vgg"][name]
    pool = name in vgg.POOL_AFTER
    fn = jax.jit(lambda p, v, pool=pool: conv_block(p, v, pool))
    sec = common.median_call_seconds(fn, p, x, reps=args.reps)
    n, h, w, c = x.shape
    rows.append((f"{name} {h}x{w} {c}->{channels}{' +pool' if pool else ''}", sec, 2.0 * n * h * w * 9 * c * channels))
    y = jax.jit(lambda p, v: conv_block(p, v, False))(p, x)
    if name in vgg.LPIPS_TAPS:
      taps[name] = y
    x = jax.jit(lambda v: nn.max_pool(v, (2, 2), strides=(2, 2)))(y) if pool else y
  for i, tap in enumerate(vgg.LPIPS_TAPS):
    fn = jax.jit(lambda k, f: head(k, f, b))
    rows.append((f"head {tap}", common.median_call_seconds(fn, params[f"lin{i}"]["kernel"], taps[tap], reps=args.reps), 0))
  total = sum(sec for _, sec, _ in rows)
  for name, sec, flops in rows:
    rate = f"{flops / sec / 1e9:6.0f} GFLOP/s" if flops else " " * 14
    print(f"{name:34s} {sec * 1e3:9.1f} ms  {rate}  {sec / total:6.1%}", flush=True)
  conv_flops = sum(f for _, _, f in rows)
  print(f"{'sum of the above':34s} {total * 1e3:9.1f} ms  {conv_flops / total / 1e9:6.0f} GFLOP/s")
  a, bb = pair[:b], pair[b:]
  steps = [int(v) for v in args.pairs_per_step.split(",")]
  steps = [b] + [k for k in steps if k != b]
  seconds = common.alternating_rounds(
      {k: functools.partial(lpips_lib.lpips, a, bb, pairs_per_step=k) for k in steps}, args.rounds)
  for k in steps:
    sec = statistics.median(seconds[k])
    speedup = [w / x for w, x in zip(seconds[b], seconds[k])]
    print(f"{f'metrics.lpips, {k} pairs/step':34s} {sec * 1e3:9.1f} ms  {conv_flops / sec / 1e9:6.0f} GFLOP/s  "
          f"x{statistics.median(speedup):.2f} ({min(speedup):.2f}-{max(speedup):.2f}) vs {b} pairs/step", flush=True)
  sq = jnp.asarray(rng.standard_normal((2048, 2048)), jnp.float32)
  peak = 2.0 * 2048 ** 3 / common.median_call_seconds(jax.jit(jnp.dot), sq, sq, reps=5)
  print(f"peak (jax.jit(jnp.dot) 2048^3): {peak / 1e9:.0f} GFLOP/s; XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}")


if __name__ == "__main__":
  main()
