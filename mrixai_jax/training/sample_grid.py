"""Sample grid PNG: conditioning masks, generated images and the real images the masks came from.

Rows (top to bottom): label map in colour (0 black, 1 fat grey, 2 FGT red, 3 vessels blue),
generated sample, real counterpart. Columns: one per mask. Pixels are upscaled by nearest
neighbour so small (e.g. 32x32) images stay readable.
"""

import numpy as np

from mrixai_jax.report import atomic

LABEL_COLOURS = np.array([[0, 0, 0], [150, 150, 150], [220, 40, 40], [40, 90, 230]], np.uint8)


def _grey(images: np.ndarray) -> np.ndarray:
  """`[N,H,W,1]` in [-1,1] -> `[N,H,W,3]` uint8."""
  g = np.round((np.clip(images[..., 0], -1.0, 1.0) + 1.0) * 127.5).astype(np.uint8)
  return np.repeat(g[..., None], 3, axis=-1)


def grid_image(samples: np.ndarray, labels: np.ndarray, real: np.ndarray, scale: int = 1, gap: int = 2) -> np.ndarray:
  """`samples, real: [N,H,W,1]` float in [-1,1], `labels: [N,H,W]` ints 0..3 -> `[3*(H*scale+gap)-gap, ...,3]` uint8."""
  rows = [LABEL_COLOURS[np.clip(labels, 0, 3)], _grey(samples), _grey(real)]
  n, h, w = labels.shape
  hs, ws = h * scale, w * scale
  out = np.full((3 * hs + 2 * gap, n * ws + (n - 1) * gap, 3), 255, np.uint8)
  for r, row in enumerate(rows):
    for c in range(n):
      tile = np.repeat(np.repeat(row[c], scale, axis=0), scale, axis=1)
      out[r * (hs + gap):r * (hs + gap) + hs, c * (ws + gap):c * (ws + gap) + ws] = tile
  return out


def write_grid(path: str, samples: np.ndarray, labels: np.ndarray, real: np.ndarray, min_tile: int = 96) -> None:
  """Writes `grid_image(...)` as a PNG at `path` (atomically); tiles are upscaled to at least `min_tile` px."""
  from PIL import Image

  scale = max(1, -(-min_tile // labels.shape[1]))
  with atomic.atomic_path(path, suffix=".png") as tmp:
    Image.fromarray(grid_image(samples, labels, real, scale=scale)).save(tmp, format="PNG")
