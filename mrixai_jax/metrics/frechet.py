"""Fréchet distances: FID (InceptionV3 pool3) and FD-VGG (VGG16 features), streaming statistics.

d² = ||mu1 - mu2||² + tr S1 + tr S2 - 2 tr (S1 S2)^{1/2}, in float64. tr (S1 S2)^{1/2} is
computed as sum_i sqrt(lambda_i(A S2 A)) with A = S1^{1/2} from `eigh` (symmetric, no complex
arithmetic). Safeguards as in pytorch-fid: non-finite inputs raise; if the eigen-decomposition
fails or is non-finite, eps*I (eps = 1e-6) is added to both covariances and it is retried; a
negative eigenvalue whose square root (the imaginary part pytorch-fid checks) exceeds 1e-3 raises
ValueError, smaller ones are clipped to 0. Covariances are unbiased (N - 1), as `np.cov`.
"""

import logging

import jax
import jax.numpy as jnp
import numpy as np

from mrixai_jax import cpu_steps
from mrixai_jax import progress
from mrixai_jax.models import inception
from mrixai_jax.models import stepped
from mrixai_jax.models import vgg
from mrixai_jax.pretrained import fid_inception
from mrixai_jax.pretrained import lpips_vgg

SQRT_EPS = 1e-6  # pytorch-fid's offset when the product is singular
IMAG_ATOL = 1e-3  # pytorch-fid's tolerance on imaginary components


class RunningStats:
  """Streaming mean and covariance of feature rows [n, d] in float64 (Chan et al. merge)."""

  def __init__(self, dim: int):
    self.dim = dim
    self.count = 0
    self.mean = np.zeros(dim, np.float64)
    self._m2 = np.zeros((dim, dim), np.float64)

  def update(self, features) -> None:
    x = np.asarray(features, np.float64)
    if x.ndim != 2 or x.shape[1] != self.dim:
      raise ValueError(f"RunningStats({self.dim}) got features of shape {x.shape}")
    n = x.shape[0]
    if n == 0:
      return
    mean_b = x.mean(axis=0)
    centred = x - mean_b
    total = self.count + n
    delta = mean_b - self.mean
    self._m2 += centred.T @ centred + np.outer(delta, delta) * (self.count * n / total)
    self.mean = self.mean + delta * (n / total)
    self.count = total

  @property
  def cov(self) -> np.ndarray:
    if self.count < 2:
      raise ValueError(f"covariance needs at least 2 samples, have {self.count}")
    return self._m2 / (self.count - 1)


def _sqrt_psd(c: np.ndarray) -> np.ndarray:
  w, v = np.linalg.eigh(c)
  return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def _product_eigenvalues(cov1, cov2) -> np.ndarray:
  a = _sqrt_psd(cov1)
  m = a @ cov2 @ a
  return np.linalg.eigvalsh((m + m.T) / 2)


def trace_sqrt_product(cov1, cov2) -> float:
  """tr (cov1 cov2)^{1/2} for covariance matrices, with pytorch-fid's safeguards."""
  try:
    lam = _product_eigenvalues(cov1, cov2)
    ok = np.all(np.isfinite(lam))
  except np.linalg.LinAlgError:
    ok = False
  if not ok:
    logging.warning("Fréchet distance: singular product; adding %g to the covariance diagonals",
                    SQRT_EPS)
    offset = SQRT_EPS * np.eye(cov1.shape[0])
    lam = _product_eigenvalues(cov1 + offset, cov2 + offset)
  negative = lam[lam < 0]
  if negative.size and np.sqrt(-negative.min()) > IMAG_ATOL:
    raise ValueError(f"Imaginary component {np.sqrt(-negative.min()):.3g} in the matrix square root: "
                     "the covariances are not positive semi-definite")
  return float(np.sum(np.sqrt(np.clip(lam, 0, None))))


def frechet_distance(mu1, cov1, mu2, cov2) -> float:
  """Squared Fréchet distance between N(mu1, cov1) and N(mu2, cov2); inputs [d] and [d, d]."""
  mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
  cov1, cov2 = np.atleast_2d(np.asarray(cov1, np.float64)), np.atleast_2d(np.asarray(cov2, np.float64))
  d = mu1.shape[0]
  if mu1.shape != (d,) or mu2.shape != (d,) or cov1.shape != (d, d) or cov2.shape != (d, d):
    raise ValueError(f"frechet_distance: shapes {mu1.shape}, {cov1.shape}, {mu2.shape}, {cov2.shape} "
                     "are not [d], [d, d], [d], [d, d] with one d")
  for name, arr in (("mu1", mu1), ("cov1", cov1), ("mu2", mu2), ("cov2", cov2)):
    if not np.all(np.isfinite(arr)):
      raise ValueError(f"frechet_distance: {name} contains non-finite values")
  diff = mu1 - mu2
  return float(diff @ diff + np.trace(cov1) + np.trace(cov2) - 2.0 * trace_sqrt_product(cov1, cov2))


# ----------------------------------------------------------------------------- feature statistics
def feature_stats(images, extract, batch_size: int, dim: int, label: str = "features") -> RunningStats:
  """Streams `images` [N, H, W, C] through `extract` (batch -> [b, dim]) into a RunningStats.

  Logs progress (images/s, ETA) every ~10 s. `images` may be any indexable array (e.g. np.load
  with mmap_mode) so large sets never sit in memory as features.
  """
  stats = RunningStats(dim)
  for rows in progress.batch_slices(len(images), batch_size, label):
    batch = np.asarray(images[rows], np.float32)
    count = len(batch)
    if count < batch_size:  # pad the last batch so the jitted extractor is not recompiled
      batch = np.concatenate([batch, np.repeat(batch[-1:], batch_size - count, axis=0)])
    stats.update(np.asarray(extract(jnp.asarray(batch)))[:count])
  return stats


def _fd_of_stats(a: RunningStats, b: RunningStats) -> float:
  return frechet_distance(a.mean, a.cov, b.mean, b.cov)


def inception_extractor(params=None, cache_dir=None):
  """A jitted [B, H, W, C] in [-1, 1] -> [B, 2048] pool3 function (params: ported by default)."""
  if params is None:
    params = fid_inception.inception_variables(cache_dir=cache_dir)
  net = inception.FIDInceptionV3()

  def extract(p, x):
    per_step = cpu_steps.inception_rows(x.shape[0])
    return stepped.map_in_steps(lambda v: net.apply(p, v), (x,), per_step)

  apply = jax.jit(extract)
  return lambda x: apply(params, x)


def vgg_extractor(layer: str = "conv5_3", params=None, cache_dir=None):
  """A jitted [B, H, W, C] in [-1, 1] -> [B, C_layer] function: VGG16 `layer`, spatial mean, over
  `cpu_steps.vgg16_images` images at a time on CPU, the weights compiled in as constants (XLA:CPU lays out
  each convolution's weights once when compiling instead of in every call; with both, 16 images
  took 107 instead of 137 ms at 64² and 1.58 instead of 2.55 s at 256²; benchmarks/constant_weights.py)."""
  if params is None:
    params = lpips_vgg.vgg16_variables(last_layer=layer, cache_dir=cache_dir)
  net = vgg.VGG16(last_layer=layer, outputs=(layer,))

  def extract(x):
    per_step = cpu_steps.vgg16_rows(*x.shape[1:3], x.shape[0])
    return stepped.map_in_steps(lambda v: jnp.mean(net.apply(params, v)[layer], axis=(1, 2)), (x,), per_step)

  return jax.jit(extract)


def fid(real, fake, batch_size: int = 16, params=None, cache_dir=None) -> float:
  """FID between image sets [N, H, W, 1|3] in [-1, 1] (InceptionV3 pool3, pytorch-fid conventions)."""
  extract = inception_extractor(params, cache_dir)
  a = feature_stats(real, extract, batch_size, inception.FEATURE_DIM, "FID real")
  b = feature_stats(fake, extract, batch_size, inception.FEATURE_DIM, "FID fake")
  return _fd_of_stats(a, b)


def fd_vgg(real, fake, batch_size: int = 16, layer: str = "conv5_3", params=None,
           cache_dir=None) -> float:
  """Fréchet distance of spatially averaged VGG16 `layer` features (small-data FID substitute)."""
  extract = vgg_extractor(layer, params, cache_dir)
  dim = dict(vgg.LAYERS)[layer]
  a = feature_stats(real, extract, batch_size, dim, "FD-VGG real")
  b = feature_stats(fake, extract, batch_size, dim, "FD-VGG fake")
  return _fd_of_stats(a, b)
