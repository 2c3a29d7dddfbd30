#!/usr/bin/env python3
"""Sampling throughput (images/s) of `mrixai_jax.diffusion.sampling.Sampler` with the real UNet.

  python -m benchmarks.bench_sampling [--quick] [--only ddim50_demo,...] [--rounds N] [--batch B] [--json PATH]

Workloads: DDIM-50 and DDPM-1000 at the demo size (configs/demo.py: 64², small UNet) and the paper
size (configs/default.py: 256², 113.7 M-parameter UNet), random weights, sharded over all devices
(batch rounded up to a multiple of the device count). Per workload: one untimed call (JIT compile,
reported), then `--rounds` timed calls; img/s = batch / median seconds. `--quick` shrinks every
workload (16², tiny UNet, DDIM-3, DDPM over a 10-step schedule) to check the script, not the speed.
DDPM-1000 at 256² takes hours on a CPU; select workloads with --only there. The comparison with the
PyTorch peer (diffusers) lives in benchmarks/run.py (workloads ddim50_64_b8, ddpm1000_32_b4).
"""

import argparse
import json
import os
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from configs import default, demo
from mrixai_jax import sharding
from mrixai_jax.diffusion import sampling
from mrixai_jax.diffusion import schedule as schedule_lib
from mrixai_jax.diffusion.conditioning import one_hot_labels
from mrixai_jax.models import unet as unet_lib

# name -> (config module, sampler, DDIM steps, default batch)
WORKLOADS = {
    "ddim50_demo": (demo, "ddim", 50, 8),
    "ddpm1000_demo": (demo, "ddpm", None, 8),
    "ddim50_paper": (default, "ddim", 50, 4),
    "ddpm1000_paper": (default, "ddpm", None, 4),
}


def _config(module, sampler: str, steps, quick: bool):
  config = module.get_config()
  config.sample.sampler = sampler
  if steps:
    config.sample.num_steps = 3 if quick else steps
  if quick:
    config.data.image_size = 16
    m = config.model
    m.block_out_channels = (32, 64)
    m.down_block_types = ("DownBlock2D", "AttnDownBlock2D")
    m.up_block_types = ("AttnUpBlock2D", "UpBlock2D")
    m.layers_per_block = 1
    config.diffusion.num_timesteps = 10
    config.sample.trajectory_num_steps = config.sample.num_steps
    config.sample.trajectory_steps = (0,)
  return config


def _random_params(model, size: int, seed: int):
  """Random weights of the init's shapes (no init compile for the 113 M-parameter model)."""
  shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0), jnp.zeros((1, size, size, 1)),
                          jnp.zeros((1,), jnp.int32), jnp.zeros((1, size, size, 3)))["params"]
  leaves, tree = jax.tree_util.tree_flatten(shapes)
  keys = jax.random.split(jax.random.PRNGKey(seed), len(leaves))
  return tree.unflatten([0.02 * jax.random.normal(k, s.shape, s.dtype) for k, s in zip(keys, leaves)])


def measure(name: str, quick: bool, rounds: int, batch=None) -> dict:
  module, kind, steps, default_batch = WORKLOADS[name]
  config = _config(module, kind, steps, quick)
  mesh = sharding.make_mesh()
  devices = mesh.devices.size
  batch = batch or (2 if quick else default_batch)
  batch = -(-batch // devices) * devices
  size = int(config.data.image_size)
  model = unet_lib.build_model(config)
  params = jax.device_put(_random_params(model, size, 0), sharding.replicated(mesh))
  schedule = schedule_lib.from_config(config.diffusion)
  sampler = sampling.sampler_from_config(unet_lib.model_fn(model), schedule, config.sample,
                                         prediction=config.diffusion.prediction, mesh=mesh)
  labels = np.random.default_rng(0).integers(0, 4, size=(batch, size, size))
  cond = jax.device_put(one_hot_labels(jnp.asarray(labels)), sharding.batch_sharding(mesh))
  keys = sampling.image_keys(jax.random.PRNGKey(0), 0, batch)
  sample = sampler.bind(params)  # as generate.py samples

  def call():
    start = time.perf_counter()
    out = sample(keys, cond)
    out.samples.block_until_ready()
    return time.perf_counter() - start

  compile_s = call()
  times = [call() for _ in range(rounds)]
  median = statistics.median(times)
  return {"size": size, "batch": batch, "steps": sampler.plan.num_steps, "devices": devices,
          "first_call_s": compile_s, "median_s": median, "min_s": min(times), "max_s": max(times),
          "img_s": batch / median}


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--quick", action="store_true", help="tiny sizes: checks the script, not speed")
  parser.add_argument("--only", default=",".join(WORKLOADS), help="comma-separated workload names")
  parser.add_argument("--rounds", type=int, default=3, help="timed calls per workload")
  parser.add_argument("--batch", type=int, default=None, help="images per call (default per workload)")
  parser.add_argument("--json", default=None, help="also write the results as JSON here")
  args = parser.parse_args(argv)
  names = [n for n in args.only.split(",") if n]
  unknown = sorted(set(names) - set(WORKLOADS))
  if unknown:
    parser.error(f"unknown workloads {unknown}; choose from {sorted(WORKLOADS)}")

  device = f"{jax.devices()[0].device_kind} x{jax.device_count()} ({jax.default_backend()})"
  print(f"# sampling throughput on {device}{'  [--quick: sizes are not the real ones]' if args.quick else ''}")
  print("| workload | size | batch | steps | first call (s) | median (s) | min–max (s) | img/s |")
  print("|---|---|---|---|---|---|---|---|")
  results = {}
  for name in names:
    r = measure(name, args.quick, args.rounds, args.batch)
    results[name] = r
    print(f"| {name} | {r['size']}² | {r['batch']} | {r['steps']} | {r['first_call_s']:.2f} | "
          f"{r['median_s']:.3f} | {r['min_s']:.3f}–{r['max_s']:.3f} | {r['img_s']:.3f} |", flush=True)
  if args.json:
    with open(args.json + ".tmp", "w") as f:
      json.dump({"device": device, "quick": args.quick, "workloads": results}, f, indent=2)
    os.replace(args.json + ".tmp", args.json)


if __name__ == "__main__":
  main()
