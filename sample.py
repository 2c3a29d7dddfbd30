"""Sample images (with denoising trajectories) from the latest EMA checkpoint in --workdir.

Usage: ``python sample.py --config=configs/demo.py --workdir=DIR [--config.a.b=value ...]``
"""

import sys

from mrixai_jax import cli
from mrixai_jax import config_validation

_CONFIG, _WORKDIR = cli.define_config_and_workdir_flags()


def main(argv):
  del argv
  print("sample.py: not yet implemented", file=sys.stderr)
  return 2


if __name__ == "__main__":
  cli.run(main, validate=config_validation.validate)
