"""The paper's faithfulness score F(x) = Σ_j NIS_j(x) · ρ_j(x) (prototypes.md §5.2).

ρ_j is the Pearson correlation between prototype j's source patch (an L×L window of its training
image, centred on the push cell) and the L×L window of the generated image centred on the cell
where prototype j fires (arg-min distance). Windows that cross the border are shifted inside the
image, so both always hold L×L pixels; a flat window (zero variance) gives ρ = 0.
"""

from typing import Tuple

import jax
import jax.numpy as jnp

from mrixai_jax.models import receptive_field as rf

FLAT_EPS = 1e-8  # denominators at or below this mean "flat window": ρ = 0


def window_corners(center_yx, size: int, image_hw):
  """Top-left-inclusive, bottom-right-exclusive windows `(y0, x0, y1, x1)` int32 `[..., 4]`.

  center_yx: `[..., 2]` window centres in pixels (float); size: L; image_hw: (H, W).
  The window is centred (floor of centre − L/2) then shifted to lie inside the image.
  """
  center = jnp.asarray(center_yx, jnp.float32)
  limits = jnp.asarray(image_hw, jnp.int32) - size
  top_left = jnp.clip(jnp.floor(center - size / 2.0).astype(jnp.int32), 0, limits)
  return jnp.concatenate([top_left, top_left + size], axis=-1)


def cell_window(info: rf.RFInfo, h: int, w: int, size: int, image_size: int) -> Tuple[int, int, int, int]:
  """`size`×`size` window centred on cell (h, w) as `(y0, x0, y1, x1)`, end exclusive, shifted (not
  truncated) to lie inside the image: `window_corners` for one cell."""
  if not 0 < size <= image_size:
    raise ValueError(f"window size {size} must be in 1..{image_size}")
  corners = window_corners(rf.cell_center(info, h, w), size, (image_size, image_size))
  return tuple(int(v) for v in corners)


def cell_centers(cells_hw, start: float, jump: float):
  """Feature cell indices `[..., 2]` (h, w) -> pixel centres `start + cell · jump` `[..., 2]`."""
  return start + jnp.asarray(cells_hw, jnp.float32) * jump


def cell_corners(cells_hw, start: float, jump: float, size: int, image_hw):
  """`[..., 4]` L×L windows (`window_corners`) centred on feature cells `cells_hw: [..., 2]`."""
  return window_corners(cell_centers(cells_hw, start, jump), size, image_hw)


def extract_windows(images, corners, size: int):
  """Crops `images: [N, H, W]` at `corners: [N, P, 4]` -> `[N, P, size, size]`."""

  def crop(image, corner):
    return jax.lax.dynamic_slice(image, (corner[0], corner[1]), (size, size))

  return jax.vmap(lambda image, cs: jax.vmap(lambda c: crop(image, c))(cs))(images, corners)


def pearson(a, b, eps: float = FLAT_EPS):
  """Pearson correlation over the last two axes of `a, b: [..., L, L]`; 0 where either is flat."""
  a = a - a.mean(axis=(-2, -1), keepdims=True)
  b = b - b.mean(axis=(-2, -1), keepdims=True)
  den = jnp.sqrt((a * a).sum(axis=(-2, -1)) * (b * b).sum(axis=(-2, -1)))
  num = (a * b).sum(axis=(-2, -1))
  return jnp.where(den > eps, num / jnp.where(den > eps, den, 1.0), 0.0)


def faithfulness(nis, rho):
  """F = Σ_j NIS_j · ρ_j: `nis, rho: [N, P]` -> `[N]`, in [−1, 1] since NIS rows sum to 1."""
  return jnp.sum(nis * rho, axis=-1)


@jax.jit
def _rho(images, firing_corners, source_patches):
  size = source_patches.shape[-1]
  generated = extract_windows(images, firing_corners, size)
  return pearson(generated, source_patches[None])


def prototype_correlations(images, firing_corners, source_patches):
  """ρ `[N, P]` between generated windows and the prototypes' source patches.

  images: `[N, H, W]` (single channel, same intensity space as the sources);
  firing_corners: `[N, P, 4]` from `window_corners`; source_patches: `[P, L, L]`.
  """
  return _rho(jnp.asarray(images, jnp.float32), jnp.asarray(firing_corners, jnp.int32),
              jnp.asarray(source_patches, jnp.float32))
