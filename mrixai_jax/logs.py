"""What the entry points print by default: the library's own log lines as plain text (stage starts
and ends, progress lines with rate and ETA every `progress.LOG_EVERY_S`, one-off notes) and every
warning; INFO from third-party packages (TFDS's builder, clu's metric writer), TFDS's progress bars
and TensorFlow's C++ start-up notices are hidden. `--verbosity=1` (absl's flag) keeps absl's
format and everything, plus the progress lines the default skips (logged at DEBUG)."""

import contextlib
import logging
import os
import sys

from absl import logging as absl_logging

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
# Third-party warnings that say nothing to a user: TFDS on every load of a configured builder, and
# on the first build of a workdir's dataset (its version folder exists before its dataset_info.json).
HIDDEN_WARNINGS = ("Using custom data configuration", "Variant folder %s has no %s")


class _DefaultFilter(logging.Filter):
  """The library's records, and third-party warnings except HIDDEN_WARNINGS."""

  def filter(self, record: logging.LogRecord) -> bool:
    if record.pathname.startswith(PACKAGE_DIR):
      return True
    return record.levelno >= logging.WARNING and not str(record.msg).startswith(HIDDEN_WARNINGS)


class _PlainFormatter(logging.Formatter):
  """The message alone; warnings and errors prefixed with their level."""

  def format(self, record: logging.LogRecord) -> str:
    text = record.getMessage()
    if record.levelno >= logging.WARNING:
      text = f"{record.levelname.lower()}: {text}"
    if record.exc_info:
      text += "\n" + self.formatException(record.exc_info)
    return text


@contextlib.contextmanager
def _stderr_descriptor_silenced():
  """Sends file descriptor 2 to /dev/null (C++ code writes there directly), restored on exit."""
  sys.stderr.flush()
  saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
  os.dup2(devnull, 2)
  try:
    yield
  finally:
    os.dup2(saved, 2)
    os.close(saved)
    os.close(devnull)


def _import_tensorflow_quietly() -> None:
  """TensorFlow >= 2.16 writes its oneDNN notice to fd 2 at import, whatever TF_CPP_MIN_LOG_LEVEL
  says; every entry point imports it anyway (TFDS, clu), so do it here with fd 2 silenced (TFDS
  imports it lazily, so both are imported)."""
  try:
    with _stderr_descriptor_silenced():
      import tensorflow  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
      import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  except ImportError:
    return
  tfds.disable_progress_bar()


def configure(verbosity: int) -> None:
  """The default policy above for `verbosity` <= 0 (absl's default); nothing changes from 1 on."""
  if verbosity >= 1:
    return
  handler = absl_logging.get_absl_handler()
  handler.addFilter(_DefaultFilter())
  handler.setFormatter(_PlainFormatter())
  _import_tensorflow_quietly()
