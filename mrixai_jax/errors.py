"""User-facing errors: the entry points print these as one line (no traceback) and exit non-zero."""


class UserError(Exception):
  """Bad input, bad config or a bad file; the message names the file or key and the problem."""


class ConfigError(UserError, ValueError):
  """An impossible or inconsistent config value; the message names the key."""
