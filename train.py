"""Train the mask-conditioned diffusion model (or the task named by --config.task).

Usage: ``python train.py --config=configs/demo.py --workdir=DIR [--config.a.b=value ...]``
Resumes from the latest checkpoint in DIR; see mrixai_jax/training/loop.py.
"""

import sys

from mrixai_jax import cli
from mrixai_jax import config_validation

_CONFIG, _WORKDIR = cli.define_config_and_workdir_flags()


def main(argv):
  del argv
  from mrixai_jax.training import loop, tasks  # pylint: disable=g-import-not-at-top

  try:
    tasks.train(_CONFIG.value, _WORKDIR.value)
  except loop.NonFiniteError as e:
    print(f"train.py: {e}", file=sys.stderr)
    return 1
  return 0


if __name__ == "__main__":
  cli.run(main, validate=config_validation.validate)
