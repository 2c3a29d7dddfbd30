"""Shared entry-point plumbing for ``train.py``, ``sample.py``, ``explain.py``.

``--config=configs/X.py`` (with ``--config.a.b=v`` overrides), ``--workdir=DIR`` and ``--overwrite``
are defined here; `run(main)` parses them, turns config mistakes and `UserError`s into one clear
line on stderr with exit code 2, applies the script's own flags to the config (`prepare`), validates
it and checks it against the one recorded in the workdir (mrixai_jax/workdir.py; the entry point is
named by the script, e.g. "train") before `main` starts. On a workdir that holds a recorded run, the
keys the command line does not set keep their recorded values and ``--config`` may be left out
(`workdir.apply_recorded`); with ``--overwrite`` the command line's config replaces the recorded one
after the outputs it invalidates are removed (one line lists them).
A training stop raised by `main` is one line too: exit 143 / 130 after SIGTERM / SIGINT (a checkpoint
was saved; the same command resumes), 1 after NaN/Inf.
"""

import importlib.util
import logging
import os
import pathlib
import sys

from absl import app
from absl import flags
from ml_collections import config_flags

from mrixai_jax import compile_cache
from mrixai_jax import config_validation
from mrixai_jax import errors
from mrixai_jax import logs
from mrixai_jax import workdir as workdir_lib

EXIT_USAGE = 2
_MAX_LISTED = 8
EXIT_DIVERGED = 1

# TensorFlow (imported by TFDS builders and clu's writers) logs C++ INFO lines at start-up.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def define_config_and_workdir_flags():
  """Defines ``--config`` and ``--workdir``; returns the flag holders (read ``.value`` in main)."""
  config = config_flags.DEFINE_config_file(
      "config", None, "ml_collections config file, e.g. configs/demo.py; on a workdir with a recorded run "
      "default: the file recorded there.", lock_config=True)
  workdir = flags.DEFINE_string("workdir", None, "Directory for every output of the run.")
  flags.DEFINE_boolean("overwrite", False, "Continue in --workdir although it was run with a different config: "
                       "outputs computed from the changed config sections are deleted, the new config is recorded.")
  flags.mark_flags_as_required(["workdir"])
  return config, workdir


def _fail(message: str):
  print(f"{pathlib.Path(sys.argv[0]).name}: error: {message}", file=sys.stderr)
  sys.exit(EXIT_USAGE)


def _flag_value(argv, name: str) -> str:
  """The value of ``--name=V`` or ``--name V`` in `argv` ("" if absent)."""
  for i, arg in enumerate(argv):
    if arg.startswith(f"--{name}="):
      return arg.split("=", 1)[1]
    if arg == f"--{name}" and i + 1 < len(argv):
      return argv[i + 1]
  return ""


def _config_path(argv) -> str:
  return _flag_value(argv, "config").split(":", 1)[0]


def _given_keys(argv) -> set:
  """The dotted keys of the ``--config.a.b=v`` overrides in `argv`."""
  return {arg[len("--config."):].split("=", 1)[0] for arg in argv if arg.startswith("--config.")}


def _with_recorded_config(argv) -> list:
  """`argv`, with ``--config=`` the file recorded in ``--workdir`` when it names none."""
  workdir = _flag_value(argv, "workdir")
  if _config_path(argv) or not workdir or "config" not in flags.FLAGS:
    return argv
  recorded = workdir_lib.recorded_config_file(workdir)
  if not recorded:
    _fail(f"--config is required: {workdir} holds no recorded run with a config file")
  if not pathlib.Path(recorded).is_file():
    _fail(f"--config not given and the config file {recorded} recorded in {workdir} no longer exists; pass --config")
  return [argv[0], f"--config={recorded}", *argv[1:]]


def _unknown_override(argv) -> str:
  """The first ``--config.a.b`` override whose key is not in the config file ("" if none)."""
  path = pathlib.Path(_config_path(argv))
  if not path.is_file():
    return ""
  spec = importlib.util.spec_from_file_location("_mrixai_config_probe", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config()
  for arg in argv:
    if arg.startswith("--config."):
      key = arg[len("--config."):].split("=", 1)[0]
      node = config
      for part in key.split("."):
        if not hasattr(node, "keys") or part not in node:
          return key
        node = node[part]
  return ""


def _parse_flags(argv):
  try:
    argv = _with_recorded_config(argv)
  except errors.UserError as e:
    _fail(str(e))
  path = _config_path(argv)
  if path and not pathlib.Path(path).is_file():
    _fail(f"config file {path!r} does not exist")
  try:
    return flags.FLAGS(argv)
  except (AttributeError, KeyError) as e:
    key = _unknown_override(argv)
    _fail(f"unknown config key 'config.{key}'" if key else f"bad config override: {e}")
  except flags.Error as e:
    _fail(str(e))


def run(main, validate=None, prepare=None, host_devices: bool = False):
  """`absl.app.run(main)` with one-line errors.

  prepare(config): sets the script's own flags in the parsed config, in place (sample.py's
  `--num_samples` etc.), so they are validated and recorded/compared in the workdir like any
  `--config.KEY` override; validate(config): may raise `ConfigError`. host_devices: one CPU
  device per core for small images (`xla_flags`), for entry points whose sharded batches gain
  from it (sampling; training does not, and its numbers would then depend on the core count).
  """

  def guarded(argv):
    # jax logs at INFO that it found no TPU; users need not see that on every start.
    logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)
    try:
      # Before anything initialises a JAX backend (validate counts devices).
      from mrixai_jax import xla_flags  # pylint: disable=g-import-not-at-top
      config = flags.FLAGS.config if "config" in flags.FLAGS else None
      overwrite = "overwrite" in flags.FLAGS and flags.FLAGS.overwrite
      if config is not None and "workdir" in flags.FLAGS and not overwrite:
        _apply_recorded(config, flags.FLAGS.workdir)
      if prepare is not None:
        prepare(config)
      if config is not None:
        xla_flags.configure(config.data.image_size, config_validation.batch_sizes(config) if host_devices else ())
      if validate is not None:
        validate(config)
      logs.configure(flags.FLAGS.verbosity)
      compile_cache.enable()
      if "overwrite" in flags.FLAGS:  # defined with --config/--workdir by define_config_and_workdir_flags
        removed = workdir_lib.check_and_record(config, flags.FLAGS.workdir, pathlib.Path(sys.argv[0]).stem,
                                               flags.FLAGS.overwrite, _config_path(sys.argv) or None)
        if removed is not None:
          print(f"{pathlib.Path(sys.argv[0]).name}: --overwrite: removed what the old config made in "
                f"{flags.FLAGS.workdir}: {', '.join(removed) or 'nothing'}", file=sys.stderr, flush=True)
      return main(argv)
    except errors.UserError as e:
      _fail(str(e))
    except Exception as e:  # pylint: disable=broad-except
      _exit_if_training_stopped(e)
      raise

  app.run(guarded, flags_parser=_parse_flags)


def _apply_recorded(config, workdir: str) -> None:
  """Recorded values for the keys the command line does not set; one line when `--config`'s file said otherwise."""
  changed = workdir_lib.apply_recorded(config, workdir, _given_keys(sys.argv))
  if changed and _config_path(sys.argv):
    listed = ", ".join(changed[:_MAX_LISTED]) + (f" and {len(changed) - _MAX_LISTED} more" if len(changed) > _MAX_LISTED
                                                 else "")
    print(f"{pathlib.Path(sys.argv[0]).name}: {len(changed)} keys keep the values recorded in {workdir} although "
          f"{_config_path(sys.argv)} sets them otherwise: {listed} (set them with --config.KEY=..., and --overwrite)",
          file=sys.stderr, flush=True)


def _exit_if_training_stopped(error: Exception) -> None:
  """A training stop (`training.interrupts`) from any entry point, e.g. the study's training stages:
  one line, exit 128 + signal after SIGTERM/SIGINT (the checkpoint is saved), `EXIT_DIVERGED` after NaN/Inf."""
  from mrixai_jax.training import interrupts  # pylint: disable=g-import-not-at-top  (imports JAX: after xla_flags)

  if isinstance(error, (interrupts.Interrupted, interrupts.NonFiniteError)):
    print(f"{pathlib.Path(sys.argv[0]).name}: {error}", file=sys.stderr)
    sys.exit(error.exit_code if isinstance(error, interrupts.Interrupted) else EXIT_DIVERGED)
