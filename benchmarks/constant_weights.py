#!/usr/bin/env python3
"""Diagnostic for docs/PERFORMANCE.md: weights compiled in as constants, and VGG16 / Inception
passes a few images at a time, against the plain forms, in one process.

Rows (each pair alternates over rounds after an idle gap; medians, speed-up = plain / library):
  lpips     `metrics.lpips` (default weights as constants, 1 pair of 256² per step) against the same
            weights passed as arguments, at 1 and 2 pairs per step;
  fd_vgg    `frechet.vgg_extractor` (constants, `vgg.cpu_images_per_step`) against one jitted pass over
            the batch with the weights as arguments, at 64² and 256²;
  fid       `frechet.inception_extractor` (one image per step) against one pass over the batch;
  ddim      `Sampler.bind(params)` against `sampler(params, ...)`, DDIM-50 on the demo UNet (64²,
            batch 8, the batch sharded over the devices; run with
            XLA_FLAGS=--xla_force_host_platform_device_count=2 for the host devices of sample.py).

  python -m benchmarks.constant_weights [--rounds 4] [--only lpips,fd_vgg,fid,ddim] [--gap 0.3]
"""

import argparse
import importlib
import os
import statistics

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import common

lpips_lib = importlib.import_module("mrixai_jax.metrics.lpips")  # the package attribute is the function


def _images(n, size, seed):
  return jnp.asarray(np.random.default_rng(seed).uniform(-1, 1, (n, size, size, 1)), jnp.float32)


def lpips_rows():
  a, b = _images(8, 256, 0), _images(8, 256, 1)
  params = lpips_lib._default_variables("auto", None)  # pylint: disable=protected-access
  yield "lpips 8 pairs 256², 1 pair/step", (lambda: lpips_lib.lpips(a, b, params=params, pairs_per_step=1)), (
      lambda: lpips_lib.lpips(a, b, pairs_per_step=1))
  yield "lpips 8 pairs 256², constants, 2 vs 1 pair/step", (lambda: lpips_lib.lpips(a, b, pairs_per_step=2)), (
      lambda: lpips_lib.lpips(a, b, pairs_per_step=1))


def fd_vgg_rows():
  from mrixai_jax.metrics import frechet  # pylint: disable=g-import-not-at-top
  from mrixai_jax.models import vgg  # pylint: disable=g-import-not-at-top
  from mrixai_jax.pretrained import lpips_vgg  # pylint: disable=g-import-not-at-top
  params = lpips_vgg.vgg16_variables(last_layer="conv5_3")
  net = vgg.VGG16(last_layer="conv5_3", outputs=("conv5_3",))
  plain = jax.jit(lambda p, x: jnp.mean(net.apply(p, x)["conv5_3"], axis=(1, 2)))
  library = frechet.vgg_extractor("conv5_3")
  for size in (64, 256):
    x = _images(16, size, 2)
    yield f"fd_vgg extractor 16 images {size}²", (lambda x=x: plain(params, x)), (lambda x=x: library(x))


def fid_rows():
  from mrixai_jax.metrics import frechet  # pylint: disable=g-import-not-at-top
  from mrixai_jax.models import inception  # pylint: disable=g-import-not-at-top
  from mrixai_jax.pretrained import fid_inception  # pylint: disable=g-import-not-at-top
  params = fid_inception.inception_variables()
  plain = jax.jit(inception.FIDInceptionV3().apply)
  library = frechet.inception_extractor()
  x = _images(16, 64, 3)
  yield "fid extractor 16 images 64²", (lambda: plain(params, x)), (lambda: library(x))


def ddim_rows():
  import ml_collections  # pylint: disable=g-import-not-at-top
  from benchmarks import specs  # pylint: disable=g-import-not-at-top
  from mrixai_jax import sharding  # pylint: disable=g-import-not-at-top
  from mrixai_jax.diffusion import conditioning, sampling, schedule  # pylint: disable=g-import-not-at-top
  from mrixai_jax.models import unet  # pylint: disable=g-import-not-at-top
  spec = specs.workloads()["ddim50_64_b8"]
  b, s = spec["batch"], spec["size"]
  model = unet.UNet.from_config(ml_collections.ConfigDict(spec["model"]))
  labels = np.random.default_rng(4).integers(0, 4, (b, s, s)).astype(np.uint8)
  cond = jnp.asarray(conditioning.one_hot_labels(labels), jnp.float32)
  params = model.init(jax.random.PRNGKey(0), jnp.zeros((b, s, s, 1)), jnp.zeros((b,), jnp.int32), cond)["params"]
  sched = schedule.from_config(ml_collections.ConfigDict(spec["diffusion"]))
  plan = sampling.ddim_plan(sched, spec["steps"], spec["sample"]["eta"], spec["sample"]["set_alpha_to_one"])
  mesh = sharding.make_mesh() if jax.device_count() > 1 and b % jax.device_count() == 0 else None
  sampler = sampling.Sampler(unet.model_fn(model), plan, clip_sample=True, mesh=mesh)
  keys = sampling.image_keys(jax.random.PRNGKey(0), 0, b)
  if mesh is not None:
    params = jax.device_put(params, sharding.replicated(mesh))
    keys, cond = (jax.device_put(v, sharding.batch_sharding(mesh)) for v in (keys, cond))
  bound = sampler.bind(params)
  yield f"ddim50 64² b8 ({jax.device_count()} device(s))", (lambda: sampler(params, keys, cond).samples), (
      lambda: bound(keys, cond).samples)


ROWS = {"lpips": lpips_rows, "fd_vgg": fd_vgg_rows, "fid": fid_rows, "ddim": ddim_rows}


def compare(plain, library, rounds, gap):
  """Median seconds of each (alternating order, one call per round after `gap` s idle)."""
  times = common.alternating_rounds({"plain": plain, "library": library}, rounds, gap=gap)
  ratios = [p / q for p, q in zip(times["plain"], times["library"])]
  return statistics.median(times["plain"]), statistics.median(times["library"]), ratios


def main():
  ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  ap.add_argument("--rounds", type=int, default=4)
  ap.add_argument("--gap", type=float, default=0.3)
  ap.add_argument("--only", default=",".join(ROWS))
  args = ap.parse_args()
  print("| comparison | plain ms | library ms | speed-up (min–max) |\n|---|---|---|---|", flush=True)
  for key in args.only.split(","):
    for label, plain, library in ROWS[key]():
      p, q, ratios = compare(plain, library, args.rounds, args.gap)
      print(f"| {label} | {p * 1e3:.0f} | {q * 1e3:.0f} | {statistics.median(ratios):.2f} "
            f"({min(ratios):.2f}–{max(ratios):.2f}) |", flush=True)
  print(f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}, {jax.device_count()} device(s)")


if __name__ == "__main__":
  main()
