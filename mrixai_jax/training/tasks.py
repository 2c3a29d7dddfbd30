"""What `train.py` trains, chosen by `config.task`.

Each entry builds a `loop.Task` from `(config, workdir)`; add a task (e.g. the prototype heads)
by registering its builder in `_BUILDERS` as "module:function" (imported only when chosen).
"""

import importlib

from mrixai_jax import sharding
from mrixai_jax.training import loop

_BUILDERS = {
    "diffusion": "mrixai_jax.training.diffusion_task:build",
}
# Tasks whose training is not one loop run (the prototype heads: phases with their own optimizers
# and a push in between) provide their own `train(config, workdir)`.
_RUNNERS = {
    "heads": "mrixai_jax.training.heads_task:train",
}


def build_task(config, workdir: str) -> loop.Task:
  if config.task not in _BUILDERS:
    raise ValueError(f"config.task must be one of {sorted(_BUILDERS)}, got {config.task!r}")
  module, function = _BUILDERS[config.task].split(":")
  return getattr(importlib.import_module(module), function)(config, workdir)


def train(config, workdir: str):
  """Initialises multi-host JAX when `distributed.initialize`, then runs the chosen task's loop."""
  sharding.maybe_initialize_distributed(config.distributed)
  if config.task in _RUNNERS:
    module, function = _RUNNERS[config.task].split(":")
    return getattr(importlib.import_module(module), function)(config, workdir)
  return loop.run(build_task(config, workdir), workdir)
