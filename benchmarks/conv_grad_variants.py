#!/usr/bin/env python3
"""Diagnostic for docs/PERFORMANCE.md: the weight gradient of a 3x3 'SAME' convolution (batch 16,
float32) on the demo UNet's shapes, as XLA:CPU computes it from `jax.vjp` of the convolution,
against one im2col matmul: dW = patches(x)ᵀ · dy with patches `[B·H·W, 9·C_in]` (the 9 shifted
copies of the zero-padded input, concatenated; `conv_general_dilated_patches` is itself a slow
convolution here).

  python -m benchmarks.conv_grad_variants [--reps 10]
"""

import argparse

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import common

DN = ("NHWC", "HWIO", "NHWC")
# (H = W, C_in, C_out) of 3x3 convolutions in configs/demo.py's UNet (64² input)
SHAPES = ((64, 32, 32), (64, 96, 32), (32, 192, 64), (16, 128, 128))


def conv(x, w):
  return jax.lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=DN)


def dw_xla(x, w, dy):
  return jax.vjp(lambda k: conv(x, k), w)[1](dy)[0]


def dw_im2col(x, w, dy):
  """patches: the 9 shifted copies of the padded input side by side, features ordered (kh, kw, C_in)."""
  b, h, wd, cin = x.shape
  cout = w.shape[3]
  xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  patches = jnp.concatenate([xp[:, i:i + h, j:j + wd, :] for i in range(3) for j in range(3)], axis=-1)
  return jnp.einsum("nk,nc->kc", patches.reshape(-1, 9 * cin), dy.reshape(-1, cout)).reshape(3, 3, cin, cout)



def main():
  ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  ap.add_argument("--reps", type=int, default=10)
  ap.add_argument("--batch", type=int, default=16)
  args = ap.parse_args()
  rng = np.random.default_rng(0)
  print("| H=W | C_in -> C_out | XLA dW GFLOP/s | im2col dW GFLOP/s | max abs err |")
  print("|---|---|---|---|---|")
  for hw, cin, cout in SHAPES:
    x = jnp.asarray(rng.standard_normal((args.batch, hw, hw, cin)), jnp.float32)
    w = jnp.asarray(rng.standard_normal((3, 3, cin, cout)) * 0.1, jnp.float32)
    dy = jnp.asarray(rng.standard_normal((args.batch, hw, hw, cout)), jnp.float32)
    fns = [jax.jit(dw_xla), jax.jit(dw_im2col)]
    err = float(jnp.abs(fns[0](x, w, dy) - fns[1](x, w, dy)).max())
    flops = 2.0 * args.batch * hw * hw * 9 * cin * cout
    rates = [flops / common.median_call_seconds(f, x, w, dy, reps=args.reps) / 1e9 for f in fns]
    print(f"| {hw} | {cin} -> {cout} | {rates[0]:.0f} | {rates[1]:.0f} | {err:.1e} |", flush=True)


if __name__ == "__main__":
  main()
