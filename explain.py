"""The one-command study: every missing stage in --workdir, then the faithfulness report.

Usage: ``python explain.py --config=configs/demo.py --workdir=DIR [--config.a.b=value ...]``
Stages already done in DIR are reused (see mrixai_jax/study.py); the report lands in DIR/report/.
"""

from mrixai_jax import cli
from mrixai_jax import config_validation

_CONFIG, _WORKDIR = cli.define_config_and_workdir_flags()


def main(argv):
  del argv
  from mrixai_jax import study  # pylint: disable=g-import-not-at-top

  study.run(_CONFIG.value, _WORKDIR.value)
  return 0


if __name__ == "__main__":
  cli.run(main, validate=config_validation.validate)
