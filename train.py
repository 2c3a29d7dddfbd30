"""Train the mask-conditioned diffusion model (or, with --config.task=heads, a prototype head).

Usage: ``python train.py --config=configs/demo.py --workdir=DIR [--config.a.b=value ...]``
"""

import sys

from mrixai_jax import cli
from mrixai_jax import config_validation

_CONFIG, _WORKDIR = cli.define_config_and_workdir_flags()


def main(argv):
  del argv
  print("train.py: not yet implemented", file=sys.stderr)
  return 2


if __name__ == "__main__":
  cli.run(main, validate=config_validation.validate)
