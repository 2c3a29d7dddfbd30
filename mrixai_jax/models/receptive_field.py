"""Receptive-field arithmetic: which image pixels a feature cell sees (prototypes.md §1.7).

A backbone describes itself as a list of `(kernel, stride, padding)` per conv/pool layer; padding is
an int (symmetric, per side) or the strings "SAME" / "VALID" (TF rules). The state after every
layer is `RFInfo(n, jump, r, start)`: output size, pixel stride between cells, receptive-field side
and the pixel centre of cell 0, starting from `(image_size, 1, 1, 0.5)`.
"""

import math
from typing import NamedTuple, Sequence, Tuple, Union

import numpy as np

Padding = Union[int, str]


class RFInfo(NamedTuple):
  n: int  # cells per side
  jump: float  # pixels between neighbouring cell centres
  r: float  # receptive-field side in pixels
  start: float  # pixel centre of cell 0


def layer_rf(kernel: int, stride: int, padding: Padding, prev: RFInfo) -> RFInfo:
  """Receptive field after one layer with the given kernel, stride and padding."""
  n_in, jump, r, start = prev
  if padding == "SAME":
    n_out = math.ceil(n_in / stride)
    pad = max(kernel - stride, 0) if n_in % stride == 0 else max(kernel - n_in % stride, 0)
  elif padding == "VALID":
    n_out = math.ceil((n_in - kernel + 1) / stride)
    pad = 0
  elif isinstance(padding, int):
    pad = 2 * padding
    n_out = math.floor((n_in - kernel + pad) / stride) + 1
  else:
    raise ValueError(f"padding must be an int, 'SAME' or 'VALID', got {padding!r}")
  left = math.floor(pad / 2)
  return RFInfo(n_out, jump * stride, r + (kernel - 1) * jump, start + ((kernel - 1) / 2 - left) * jump)


def receptive_field(image_size: int, layers: Sequence[Tuple[int, int, Padding]],
                    prototype_size: int = 1) -> RFInfo:
  """Receptive field of a prototype-layer cell: the backbone's `layers`, then the prototype
  "layer" (kernel `prototype_size`, stride 1, VALID)."""
  info = RFInfo(image_size, 1, 1, 0.5)
  for kernel, stride, padding in layers:
    info = layer_rf(kernel, stride, padding, info)
  return layer_rf(prototype_size, 1, "VALID", info)


def rf_box(info: RFInfo, h: int, w: int, image_size: int) -> Tuple[int, int, int, int]:
  """Receptive-field box of cell (h, w) as `(y0, y1, x0, x1)` (end exclusive, clipped to the image),
  with the original code's truncation toward zero."""
  ch, cw = info.start + h * info.jump, info.start + w * info.jump
  return (max(int(ch - info.r / 2), 0), min(int(ch + info.r / 2), image_size),
          max(int(cw - info.r / 2), 0), min(int(cw + info.r / 2), image_size))


def cell_center(info: RFInfo, h, w):
  """Pixel centre `(y, x)` of cell (h, w): `start + index · jump`."""
  return info.start + h * info.jump, info.start + w * info.jump


def vgg_layers(config: Sequence[Union[int, str]]) -> list:
  """VGG layer list from a torchvision-style config (`64, 'M', ...`): conv 3/1/1, pool 2/2/0."""
  return [(2, 2, 0) if v == "M" else (3, 1, 1) for v in config]


def high_activation_box(activation, percentile: float = 95.0) -> Tuple[int, int, int, int]:
  """The originals' "prototype image" crop (§1.9): bounding box `(y0, y1, x0, x1)` (end exclusive)
  of all pixels of the 2-D `activation` map at or above its `percentile` (numpy 'linear').

  The originals first upsample the cell-resolution similarity map to the image size with OpenCV
  bicubic; pass an already upsampled map to reproduce that step.
  """
  activation = np.asarray(activation)
  if activation.ndim != 2:
    raise ValueError(f"activation must be a 2-D map, got shape {activation.shape}")
  mask = activation >= np.percentile(activation, percentile)
  rows, cols = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
  return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
