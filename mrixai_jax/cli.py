"""Flags shared by the entry points (``train.py``, ``sample.py``, ``explain.py``)."""

from absl import flags
from ml_collections import config_flags


def define_config_and_workdir_flags():
  """Defines ``--config=configs/X.py`` (with ``--config.a.b=v`` overrides) and ``--workdir=DIR``.

  Returns the two flag holders ``(config, workdir)``; read ``.value`` after absl parsed argv.
  """
  config = config_flags.DEFINE_config_file(
      "config", None, "ml_collections config file, e.g. configs/demo.py.", lock_config=True)
  workdir = flags.DEFINE_string("workdir", None, "Directory for every output of the run.")
  flags.mark_flags_as_required(["config", "workdir"])
  return config, workdir
