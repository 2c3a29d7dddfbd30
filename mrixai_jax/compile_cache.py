"""JAX's persistent compilation cache for the entry points: a computation compiled once (the
heads' train steps of every seed and kind, a resumed run, a second study) is read back instead of
compiled again. Directory: `<cache_dir>/jax_compilation` (`pretrained.cache.cache_dir`: the
`MRIXAI_CACHE_DIR` variable, else ~/.cache/mrixai_jax); `MRIXAI_COMPILE_CACHE=0` turns it off.
"""

import os

OPT_OUT_ENV = "MRIXAI_COMPILE_CACHE"
SUBDIR = "jax_compilation"
# Compilations shorter than this are not written (the heads' steps take 0.7-0.9 s on 2 CPU cores).
MIN_COMPILE_SECONDS = 0.2


def enable() -> None:
  """Points jax at the cache directory unless opted out or the user configured a cache already."""
  if os.environ.get(OPT_OUT_ENV, "1").strip().lower() in ("0", "false", "no", "off"):
    return
  import jax  # pylint: disable=g-import-not-at-top

  from mrixai_jax.pretrained import cache  # pylint: disable=g-import-not-at-top

  if jax.config.jax_compilation_cache_dir:
    return
  jax.config.update("jax_compilation_cache_dir", str(cache.cache_dir() / SUBDIR))
  jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
