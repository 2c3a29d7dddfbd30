"""PSNR and SSIM, jit-compiled and batched over [B, H, W, C] images.

SSIM follows Wang et al. 2004 (`ssim_index.m`): an 11x11 Gaussian window (sigma 1.5, normalised,
applied separably), K1 = 0.01, K2 = 0.03, population moments, 'valid' borders, mean of the map;
multi-channel images average the per-channel SSIM. With the defaults it equals scikit-image's
`structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
data_range=R, channel_axis=-1)`.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

_HIGHEST = jax.lax.Precision.HIGHEST  # full float32 dots on GPUs too (no TF32)


def _check_pair(a, b, name):
  a, b = jnp.asarray(a), jnp.asarray(b)
  if a.ndim != 4 or a.shape != b.shape:
    raise ValueError(f"{name} expects two [B, H, W, C] arrays of equal shape, got {a.shape}, {b.shape}")
  dtype = jnp.promote_types(jnp.promote_types(a.dtype, b.dtype), jnp.float32)
  return a.astype(dtype), b.astype(dtype)


@jax.jit
def _psnr(a, b, data_range):
  mse = jnp.mean((a - b) ** 2, axis=(1, 2, 3))
  return 10.0 * jnp.log10(data_range ** 2 / mse)


def psnr(a, b, data_range: float = 2.0) -> jnp.ndarray:
  """10 log10(R^2 / MSE) per image. a, b: [B, H, W, C] -> [B] dB (inf where identical)."""
  a, b = _check_pair(a, b, "psnr")
  return _psnr(a, b, jnp.asarray(data_range, a.dtype))


def gaussian_window(size: int, sigma: float) -> np.ndarray:
  """Normalised 1-D Gaussian taps [size] (outer product = MATLAB fspecial('gaussian'))."""
  x = np.arange(size, dtype=np.float64) - (size - 1) / 2
  w = np.exp(-x ** 2 / (2 * sigma ** 2))
  return w / w.sum()


def _filter_valid(x, taps):
  """Separable 'valid' correlation of [N, H, W, C] with 1-D taps along W, then H.

  Written as k shifted multiply-adds per axis: XLA fuses each axis into one elementwise loop,
  23x faster on XLA:CPU than a depthwise convolution with one channel per group
  (benchmarks/ssim_filter_variants.py).
  """
  k = taps.shape[0]

  def along(v, axis):
    n = v.shape[axis] - k + 1
    out = taps[0] * jax.lax.slice_in_dim(v, 0, n, axis=axis)
    for i in range(1, k):
      out = out + taps[i] * jax.lax.slice_in_dim(v, i, i + n, axis=axis)
    return out

  return along(along(x, 2), 1)


def _image_mean(s):
  """Mean over (H, W, C) of [N, H, W, C] -> [N], as two matrix-vector products (rows, then images).

  XLA:CPU (jaxlib 0.10) hands the SSIM map fused with a mean reduction to its YNNPACK reduce
  kernel by default, ~100x slower here than these two dots, which keep the map a plain loop
  fusion (benchmarks/ssim_filter_variants.py). Averaging rows first keeps the float32 error of
  the mean near 1e-7.
  """
  n, h = s.shape[:2]
  rows = s.reshape(n, h, -1)
  row_means = jnp.einsum("nhw,w->nh", rows, jnp.full(rows.shape[-1:], 1.0 / rows.shape[-1], s.dtype),
                         precision=_HIGHEST)
  return jnp.dot(row_means, jnp.full((h,), 1.0 / h, s.dtype), precision=_HIGHEST)


@functools.partial(jax.jit, static_argnames=("use_sample_covariance",))
def _ssim(a, b, taps, c1, c2, use_sample_covariance):
  # The five local moments filtered in one pass, stacked along the batch axis.
  moments = _filter_valid(jnp.concatenate([a, b, a * a, b * b, a * b]), taps)
  mu_a, mu_b, aa, bb, ab = jnp.split(moments, 5)
  var_a, var_b, cov = aa - mu_a ** 2, bb - mu_b ** 2, ab - mu_a * mu_b
  if use_sample_covariance:
    n = taps.shape[0] ** 2
    var_a, var_b, cov = (v * (n / (n - 1)) for v in (var_a, var_b, cov))
  s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
  return _image_mean(s)


def ssim(a, b, data_range: float = 2.0, win_size: int = 11, sigma: float = 1.5, k1: float = 0.01,
         k2: float = 0.03, use_sample_covariance: bool = False) -> jnp.ndarray:
  """Mean SSIM per image. a, b: [B, H, W, C] (H, W >= win_size) -> [B].

  `data_range` is the dynamic range R of the data (2 for [-1, 1]); C1 = (k1 R)^2, C2 = (k2 R)^2.
  Computed in the inputs' precision (float32, or float64 with jax x64 enabled).
  """
  a, b = _check_pair(a, b, "ssim")
  if min(a.shape[1:3]) < win_size:
    raise ValueError(f"ssim needs images of at least {win_size}x{win_size} pixels, got {a.shape[1:3]}")
  if win_size % 2 != 1:
    raise ValueError(f"ssim win_size must be odd, got {win_size}")
  taps = jnp.asarray(gaussian_window(win_size, sigma), a.dtype)
  c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
  return _ssim(a, b, taps, jnp.asarray(c1, a.dtype), jnp.asarray(c2, a.dtype), use_sample_covariance)
