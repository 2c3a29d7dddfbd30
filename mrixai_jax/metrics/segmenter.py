"""Classical breast-region segmenter for (generated) axial breast MRI slices, anterior up.

No learned model: it lets "Dice of generated anatomy vs conditioning mask" be computed for any
image. Steps, with lengths as fractions of the image side S:
1. light Gaussian smoothing; tissue = above the lower three-class Otsu threshold (air and lung
   are below it);
2. bias correction: tissue intensity divided by its Gaussian-weighted local mean (sigma
   `bias_sigma` S, tissue pixels only); fat = above the Otsu threshold of the corrected tissue;
3. per column, from the first tissue pixel down to the last fat pixel above the first non-tissue
   pixel below it: the breast spans skin to the chest wall, the lung stops it;
4. columns whose run is shorter than `min_run` x the longest run are dropped (the thin torso fat
   layer between and beside the breasts);
5. horizontal closing (`closing` S) and hole filling bridge FGT notches; opening (`opening` S)
   removes slivers; the `components` largest connected components at least `min_component` x
   the largest are kept (the two breasts).
Defaults were chosen on phantom seeds 1, 7 and 11 (mean Dice vs labels > 0, 20 slices each:
64 px 0.947 / 0.960 / 0.949, 128 px 0.956 / 0.965 / 0.965). Very dense breasts (little fat) at
64 px remain the weak case (worst slice 0.79).
"""

import dataclasses

import numpy as np
from scipy import ndimage
from skimage import filters
from skimage import morphology


@dataclasses.dataclass(frozen=True)
class SegmenterParams:
  smooth: float = 0.5 / 64  # Gaussian sigma, fraction of S
  bias_sigma: float = 0.3  # sigma of the local mean used for bias correction, fraction of S
  min_run: float = 0.3  # fraction of the longest column run
  closing: float = 0.02  # half-length of the horizontal closing line, fraction of S
  opening: float = 0.02  # opening disk radius, fraction of S
  components: int = 2
  min_component: float = 0.25  # fraction of the largest component's area


def _px(fraction: float, size: int) -> int:
  return max(1, int(round(fraction * size)))


def _fat_mask(x: np.ndarray, tissue: np.ndarray, bias_sigma_px: float) -> np.ndarray:
  """Bias-corrected fat: tissue intensity / local tissue mean above its Otsu threshold."""
  i = x - x.min()
  local_sum = ndimage.gaussian_filter(np.where(tissue, i, 0.0), bias_sigma_px)
  local_count = ndimage.gaussian_filter(tissue.astype(np.float64), bias_sigma_px)
  bias = local_sum / np.maximum(local_count, 1e-6)
  corrected = np.where(tissue, i / np.maximum(bias, 1e-6), 0.0)
  values = corrected[tissue]
  if values.size < 2 or np.ptp(values) == 0:
    return np.zeros_like(tissue)
  return corrected > filters.threshold_otsu(values)


def _column_runs(tissue: np.ndarray, fat: np.ndarray) -> tuple:
  """Per column: first tissue row, and last fat row above the first non-tissue row below it."""
  size = tissue.shape[0]
  rows = np.arange(size)[:, None]
  y_top = np.where(tissue.any(0), tissue.argmax(0), size)
  dark = ~tissue & (rows > y_top)
  y_dark = np.where(dark.any(0), dark.argmax(0), size)
  fat_run = fat & (rows >= y_top) & (rows < y_dark)
  y_last = np.where(fat_run.any(0), size - 1 - fat_run[::-1].argmax(0), -1)
  return y_top, y_last


def segment_breast(image, params: SegmenterParams = SegmenterParams()) -> np.ndarray:
  """image: [H, W] or [H, W, 1] float (any intensity scale, anterior up) -> bool [H, W] breast mask."""
  x = np.asarray(image, np.float64)
  if x.ndim == 3 and x.shape[-1] == 1:
    x = x[..., 0]
  if x.ndim != 2:
    raise ValueError(f"segment_breast expects one [H, W] or [H, W, 1] image, got shape {x.shape}")
  size = min(x.shape)
  x = ndimage.gaussian_filter(x, params.smooth * size)
  if np.ptp(x) == 0:
    return np.zeros(x.shape, bool)
  try:
    t1, _ = filters.threshold_multiotsu(x, classes=3)
  except ValueError:  # too few grey levels for three classes
    return np.zeros(x.shape, bool)
  tissue = x > t1
  y_top, y_last = _column_runs(tissue, _fat_mask(x, tissue, params.bias_sigma * size))
  run = y_last - y_top + 1
  if run.max() <= 0:
    return np.zeros(x.shape, bool)
  y_last = np.where(run >= params.min_run * run.max(), y_last, -1)
  rows = np.arange(x.shape[0])[:, None]
  mask = (rows >= y_top) & (rows <= y_last)
  pad = _px(params.closing, size)
  line = np.ones((1, 2 * pad + 1), bool)
  mask = ndimage.binary_closing(np.pad(mask, pad), line)[pad:-pad, pad:-pad]
  mask = ndimage.binary_fill_holes(mask)
  mask = ndimage.binary_opening(mask, morphology.disk(_px(params.opening, size)))
  labels, n = ndimage.label(mask)
  if n == 0:
    return mask
  areas = ndimage.sum(mask, labels, np.arange(1, n + 1))
  order = np.argsort(-areas)[:params.components]
  keep = [i + 1 for i in order if areas[i] >= params.min_component * areas[order[0]]]
  return np.isin(labels, keep)


def segment_batch(images, params: SegmenterParams = SegmenterParams()) -> np.ndarray:
  """images: [N, H, W, 1] (or [N, H, W]) -> bool [N, H, W]."""
  images = np.asarray(images)
  if images.ndim not in (3, 4):
    raise ValueError(f"segment_batch expects [N, H, W(, 1)] images, got shape {images.shape}")
  return np.stack([segment_breast(im, params) for im in images]) if len(images) else (
      np.zeros(images.shape[:3], bool))


def params_from_config(metrics_config) -> SegmenterParams:
  """SegmenterParams from `config.metrics.segmenter` (missing keys keep their defaults)."""
  section = metrics_config.get("segmenter", None) if metrics_config is not None else None
  if section is None:
    return SegmenterParams()
  fields = {f.name for f in dataclasses.fields(SegmenterParams)}
  return SegmenterParams(**{k: v for k, v in dict(section).items() if k in fields})
