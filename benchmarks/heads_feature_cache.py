#!/usr/bin/env python3
"""Diagnostic for docs/PERFORMANCE.md: a prototype-head training step from the images against the
same step from cached backbone features (`training/feature_cache.py`), and the trunk over a split
at several images per call, on the demo's heads (configs/demo.py: ImageNet VGG16 to conv3_3, 64²,
batch 16, ProtoPNet, backbone frozen).

Rows alternate over rounds (one call per round after `--gap` s idle; medians, speed-up = images /
cached); the cache row is what `TrainInputs` pays once per fixed stretch.

  python -m benchmarks.heads_feature_cache [--rounds 10] [--images 420] [--gap 0.3]
"""

import argparse
import os
import statistics
import time

from mrixai_jax import xla_flags

xla_flags.configure(64, ())  # as train.py / explain.py on the demo config

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import common
from configs import demo
from mrixai_jax import sharding
from mrixai_jax.data import phantom
from mrixai_jax.models import prototypes as pm
from mrixai_jax.pretrained import lpips_vgg
from mrixai_jax.training import feature_cache, heads_task, loop


class _Steps:
  """`()` -> loss of one more joint-phase step (the state is donated, so each side keeps its own)."""

  def __init__(self, task, batch, mesh):
    phases = loop.resolve_phases(task)
    self._step = loop.make_train_step(task, next(p for p in phases if p.name == "joint"), mesh)
    self._state = loop.init_state(task, phases, mesh)
    self._batch = jax.device_put(batch, sharding.batch_sharding(mesh))

  def __call__(self):
    self._state, metrics = self._step(self._state, self._batch)
    return metrics["loss"]


def main():
  ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  ap.add_argument("--rounds", type=int, default=10)
  ap.add_argument("--images", type=int, default=420, help="split size for the cache row (demo: 420)")
  ap.add_argument("--gap", type=float, default=0.3)
  args = ap.parse_args()
  config = demo.get_config()
  heads = config.heads
  size, batch_size = demo.get_config().data.image_size, int(heads.train.batch_size)
  model = pm.build_model(heads, size)
  data = phantom.generate(args.images, size, 0)
  params = pm.init_params(model, jax.random.PRNGKey(0), lpips_vgg.pretrained_backbone(model))
  images, labels = data["image"][:batch_size], data["labels"][:batch_size]
  trunk = np.asarray(pm.backbone_features(model, params, jnp.asarray(images)))
  mesh = sharding.make_mesh()
  task = heads_task.build(config, "", data=data)
  steps = {"images": _Steps(task, {"image": images, "labels": labels}, mesh),
           "cached": _Steps(task, {"trunk": trunk, "labels": labels}, mesh)}
  times = common.alternating_rounds(steps, args.rounds, gap=args.gap)
  ratios = [a / b for a, b in zip(times["images"], times["cached"])]
  print("| comparison | images ms | cached ms | speed-up (min–max) |\n|---|---|---|---|")
  print(f"| heads train step, {batch_size} images of {size}² | {statistics.median(times['images']) * 1e3:.1f} | "
        f"{statistics.median(times['cached']) * 1e3:.1f} | {statistics.median(ratios):.1f} "
        f"({min(ratios):.1f}–{max(ratios):.1f}) |", flush=True)
  print(f"\n| trunk over {args.images} images of {size}² | seconds | img/s |\n|---|---|---|")
  trunk_fn = jax.jit(lambda p, x: pm.backbone_features(model, {"backbone": p}, x))
  for per_call in (16, 32, int(heads.train.push_batch_size)):
    chunks = [data["image"][i:i + per_call] for i in range(0, args.images, per_call)]
    for chunk in {len(c): c for c in chunks}.values():  # compile every chunk shape first
      trunk_fn(params["backbone"], chunk).block_until_ready()
    start = time.perf_counter()
    for chunk in chunks:
      np.asarray(trunk_fn(params["backbone"], chunk))
    seconds = time.perf_counter() - start
    print(f"| {per_call} images per call (compiled) | {seconds:.2f} | {args.images / seconds:.0f} |", flush=True)
  start = time.perf_counter()
  feature_cache.compute(model, params["backbone"], data["image"], int(heads.train.push_batch_size), "cache")
  seconds = time.perf_counter() - start
  print(f"| `feature_cache.compute` (push_batch_size {heads.train.push_batch_size}, compilation included) | "
        f"{seconds:.2f} | {args.images / seconds:.0f} |", flush=True)
  print(f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}, {jax.device_count()} device(s)")


if __name__ == "__main__":
  main()
