"""Train the mask-conditioned diffusion model (or the task named by --config.task).

Usage: ``python train.py --config=configs/demo.py --workdir=DIR [--config.a.b=value ...]``
Resumes from the latest checkpoint in DIR; see mrixai_jax/training/loop.py.
"""

import sys

from absl import app

from mrixai_jax import cli
from mrixai_jax.training import loop, tasks

_CONFIG, _WORKDIR = cli.define_config_and_workdir_flags()


def main(argv):
  del argv
  try:
    tasks.train(_CONFIG.value, _WORKDIR.value)
  except loop.NonFiniteError as e:
    print(f"train.py: {e}", file=sys.stderr)
    return 1
  return 0


if __name__ == "__main__":
  app.run(main)
