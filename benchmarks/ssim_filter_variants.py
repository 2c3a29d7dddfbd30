#!/usr/bin/env python3
"""Diagnostic for docs/PERFORMANCE.md: where SSIM's time goes on XLA:CPU, [8, 256, 256, 1] float32.

1. The separable 11-tap Gaussian 'valid' filter of one image batch: two depthwise
   `conv_general_dilated` with one channel (the library before), 11 shifted multiply-adds per
   axis (the library now: W then H; and H then W) and banded (Toeplitz) matmuls.
2. The per-image mean of the SSIM map: `jnp.mean` fused with the map (jaxlib 0.10 sends that
   fusion to its YNNPACK reduce kernel) against the library's two matrix-vector products.
3. Whole SSIM: the five moments filtered one by one with the depthwise convolution and a
   `jnp.mean` (before) against `metrics.ssim` (moments stacked along the batch, one filter pass).

  python -m benchmarks.ssim_filter_variants [--reps 20]
"""

import argparse

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import common

from mrixai_jax.metrics import image_quality

# pylint: disable=protected-access


def depthwise_convs(x, taps):
  """The library's filter before: H then W, each a depthwise convolution with C groups."""
  k, c = taps.shape[0], x.shape[-1]
  dn = ("NHWC", "HWIO", "NHWC")
  hp = jax.lax.Precision.HIGHEST
  x = jax.lax.conv_general_dilated(x, jnp.tile(taps.reshape(k, 1, 1, 1), (1, 1, 1, c)), (1, 1), "VALID",
                                   dimension_numbers=dn, feature_group_count=c, precision=hp)
  return jax.lax.conv_general_dilated(x, jnp.tile(taps.reshape(1, k, 1, 1), (1, 1, 1, c)), (1, 1), "VALID",
                                      dimension_numbers=dn, feature_group_count=c, precision=hp)


def shifted_adds_h_then_w(x, taps):
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


def ssim_map(a, b, taps, filt, c1=0.02 ** 2, c2=0.06 ** 2):
  mu_a, mu_b = filt(a, taps), filt(b, taps)
  var_a, var_b, cov = filt(a * a, taps) - mu_a ** 2, filt(b * b, taps) - mu_b ** 2, filt(a * b, taps) - mu_a * mu_b
  return ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))


def main():
  ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  ap.add_argument("--reps", type=int, default=20)
  args = ap.parse_args()
  taps = jnp.asarray(image_quality.gaussian_window(11, 1.5), jnp.float32)
  rng = np.random.default_rng(0)
  a = rng.uniform(-1, 1, (8, 256, 256, 1)).astype(np.float32)
  b = jnp.asarray(np.clip(a + 0.3 * rng.standard_normal(a.shape), -1, 1), jnp.float32)
  a = jnp.asarray(a)
  maps = jax.jit(lambda u, v: ssim_map(u, v, taps, image_quality._filter_valid))(a, b)
  sections = {
      "filter [8,256,256,1]": ({
          "depthwise conv_general_dilated (before)": jax.jit(lambda v: depthwise_convs(v, taps)),
          "shifted multiply-adds W, H (library)": jax.jit(lambda v: image_quality._filter_valid(v, taps)),
          "shifted multiply-adds H, W": jax.jit(lambda v: shifted_adds_h_then_w(v, taps)),
          "banded matmuls": jax.jit(lambda v: banded_matmuls(v, taps)),
      }, (a,)),
      "mean of the SSIM map (map fused in)": ({
          "jnp.mean (before)": jax.jit(lambda *m: jnp.mean(ssim_map(*m, taps, lambda v, t: v), axis=(1, 2, 3))),
          "two matrix-vector products (library)": jax.jit(lambda *m: image_quality._image_mean(
              ssim_map(*m, taps, lambda v, t: v))),
      }, (maps, maps)),
      "whole SSIM": ({
          "depthwise convs + jnp.mean (before)": jax.jit(lambda u, v: jnp.mean(ssim_map(u, v, taps, depthwise_convs),
                                                                            axis=(1, 2, 3))),
          "metrics.ssim (library)": lambda u, v: image_quality.ssim(u, v, data_range=2.0),
      }, (a, b)),
  }
  for title, (variants, fargs) in sections.items():
    print(f"-- {title}", flush=True)
    ref = None
    for name, fn in variants.items():
      out = np.asarray(fn(*fargs))
      ref = out if ref is None else ref
      s = common.median_call_seconds(fn, *fargs, reps=args.reps)
      print(f"{name:40s} median {s * 1e3:8.2f} ms  max abs diff vs first row {np.abs(out - ref).max():.1e}",
            flush=True)


if __name__ == "__main__":
  main()
