"""Train the mask-conditioned diffusion model (or the task named by --config.task).

Usage: ``python train.py --config=configs/demo.py --workdir=DIR [--config.a.b=value ...]``
Resumes from the latest checkpoint in DIR; see mrixai_jax/training/loop.py.
Exit codes: 0 done; 1 training diverged (NaN/Inf); 2 bad config or input; 143 / 130 stopped by
SIGTERM / SIGINT after saving a checkpoint of the current step (run the same command to resume).
"""

from mrixai_jax import cli
from mrixai_jax import config_validation

_CONFIG, _WORKDIR = cli.define_config_and_workdir_flags()


def main(argv):
  del argv
  from mrixai_jax.training import tasks  # pylint: disable=g-import-not-at-top

  tasks.train(_CONFIG.value, _WORKDIR.value)  # training stops become exit codes in cli.run


if __name__ == "__main__":
  cli.run(main, validate=config_validation.validate)
