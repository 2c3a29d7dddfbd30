"""What `train.py` trains, chosen by `config.task`: each builder turns `(config, workdir)` into a
`loop.Task`, and the one loop (`loop.run`) trains it."""

from mrixai_jax import sharding
from mrixai_jax.training import diffusion_task, heads_task, loop

BUILDERS = {
    "diffusion": diffusion_task.build,
    "heads": heads_task.build,
}


def build_task(config, workdir: str) -> loop.Task:
  if config.task not in BUILDERS:
    raise ValueError(f"config.task must be one of {sorted(BUILDERS)}, got {config.task!r}")
  return BUILDERS[config.task](config, workdir)


def train(config, workdir: str):
  """Initialises multi-host JAX when `distributed.initialize`, then trains the chosen task."""
  sharding.maybe_initialize_distributed(config.distributed)
  return loop.run(build_task(config, workdir), workdir)
