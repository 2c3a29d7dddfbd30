"""The entry points' persistent compilation cache: on by default under the project's cache
directory, off with MRIXAI_COMPILE_CACHE=0, and a directory the user set wins."""

import subprocess
import sys

PROBE = ("import jax; from mrixai_jax import compile_cache; compile_cache.enable(); "
         "print(jax.config.jax_compilation_cache_dir)")


def _probe(env_extra, tmp_path):
  env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "MRIXAI_CACHE_DIR": str(tmp_path / "cache"), **env_extra}
  out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120)
  assert out.returncode == 0, out.stderr
  return out.stdout.strip()


def test_cache_directory_opt_out_and_user_setting(tmp_path):
  assert _probe({}, tmp_path) == str(tmp_path / "cache" / "jax_compilation")
  assert _probe({"MRIXAI_COMPILE_CACHE": "0"}, tmp_path) in ("", "None")
  assert _probe({"JAX_COMPILATION_CACHE_DIR": str(tmp_path / "mine")}, tmp_path) == str(tmp_path / "mine")
