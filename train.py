"""Train the mask-conditioned diffusion model (or, with --config.task=heads, a prototype head).

Usage: ``python train.py --config=configs/demo.py --workdir=DIR [--config.a.b=value ...]``
"""

import sys

from absl import app

from mrixai_jax import cli

_CONFIG, _WORKDIR = cli.define_config_and_workdir_flags()


def main(argv):
  del argv
  print("train.py: not yet implemented", file=sys.stderr)
  return 2


if __name__ == "__main__":
  app.run(main)
