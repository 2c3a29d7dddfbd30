"""A small VGG-style CNN trunk for tests and quick runs: blocks of two 3×3 convs (+ ReLU), a 2×2
max-pool between blocks. Output stride 2^(blocks − 1)."""

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp


# torchvision VGG's conv init: Kaiming normal, fan-out, ReLU gain (zero bias is flax's default).
KAIMING_FAN_OUT = nn.initializers.variance_scaling(2.0, "fan_out", "normal")


class SmallCNN(nn.Module):
  """`x: [B, H, W, 1]` in [-1, 1] -> ReLU features `[B, H/s, W/s, channels[-1]]`."""

  channels: Sequence[int]

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    for block, width in enumerate(self.channels):
      if block:
        x = nn.max_pool(x, (2, 2), strides=(2, 2))
      for i in range(2):
        x = nn.relu(nn.Conv(width, (3, 3), padding=1, kernel_init=KAIMING_FAN_OUT,
                            name=f"conv{block + 1}_{i + 1}")(x))
    return x


def layers(channels: Sequence[int]) -> list:
  """`(kernel, stride, padding)` per layer, for the receptive-field arithmetic."""
  out = []
  for block in range(len(channels)):
    if block:
      out.append((2, 2, 0))
    out += [(3, 1, 1), (3, 1, 1)]
  return out
