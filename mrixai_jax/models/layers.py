"""UNet building blocks with diffusers' structure and parameter names (NHWC, linen).

Op formulations follow the perf notes (shared/design/perf/README.md): GroupNorm from per-channel
spatial sums, and attention with the heads in front and the softmax normalisation deferred
(`exp(s - max)`, `P @ V`, then divide by the row sums); on XLA:CPU the stock forms are several
times slower. Norm statistics and the softmax run in float32 whatever the compute dtype, and
so do the accumulation and bias add of every convolution and dense layer (`conv`, `dense`): a
bfloat16 bias gradient summed over B·H·W in bfloat16 stalls (at 64² it came out 20–80% off).
SiLU has a constant-free derivative (docs/PERFORMANCE.md: +7% per training step on XLA:CPU).
"""

import functools

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

_PAD1 = ((1, 1), (1, 1))


def conv(features: int, kernel: int, dtype, name: str, **kwargs):
  """`nn.Conv` (HWIO kernel, bias) computing in `dtype` with float32 accumulation and bias add;
  returns `x -> y` with `y` in `dtype`. Call inside a compact method."""
  layer = nn.Conv(features, (kernel, kernel), dtype=dtype, name=name,
                  conv_general_dilated=functools.partial(jax.lax.conv_general_dilated,
                                                         preferred_element_type=jnp.float32), **kwargs)
  return lambda x: layer(x).astype(dtype)


def dense(features: int, dtype, name: str):
  """`nn.Dense` computing in `dtype` with float32 accumulation and bias add; output in `dtype`."""
  layer = nn.Dense(features, dtype=dtype, name=name,
                   dot_general=functools.partial(jax.lax.dot_general, preferred_element_type=jnp.float32))
  return lambda x: layer(x).astype(dtype)


@jax.custom_jvp
def silu(x):
  """`x * sigmoid(x)`, elementwise, any shape and float dtype."""
  return x * jax.nn.sigmoid(x)


@silu.defjvp
def _silu_jvp(primals, tangents):
  """silu'(x) = s + x·s·(1 - s), written `s + xs - xs·s` (xs = x·s): the stock rule's `1 - s`
  makes XLA:CPU materialise a full array of ones per activation in the backward pass."""
  (x,), (dx,) = primals, tangents
  s = jax.nn.sigmoid(x)
  xs = x * s
  return xs, dx * (s + xs - xs * s)


def timestep_embedding(t, dim: int, flip_sin_to_cos: bool, freq_shift: float, max_period: float = 10000.0):
  """diffusers' `get_timestep_embedding`: `t: [B]` (int or float) -> `[B, dim]` float32.

  Frequencies `exp(-log(max_period) * i / (dim/2 - freq_shift))`, `[sin | cos]` or, with
  `flip_sin_to_cos`, `[cos | sin]`; an odd `dim` gets one zero column.
  """
  half = dim // 2
  freqs = jnp.exp(-math.log(max_period) * jnp.arange(half, dtype=jnp.float32) / (half - freq_shift))
  args = t.astype(jnp.float32)[:, None] * freqs[None, :]
  sin, cos = jnp.sin(args), jnp.cos(args)
  emb = jnp.concatenate([cos, sin] if flip_sin_to_cos else [sin, cos], axis=-1)
  if dim % 2:
    emb = jnp.pad(emb, ((0, 0), (0, 1)))
  return emb


class GroupNorm(nn.Module):
  """torch.nn.GroupNorm semantics (biased variance, per-channel affine) on `[B, ..., C]`.

  Statistics come from per-channel sums over the spatial axes, reduced to groups on the small
  `[B, C]` result, then one fused scale-and-shift pass. Params `scale`, `bias`: `[C]` float32.
  """

  num_groups: int
  epsilon: float

  @nn.compact
  def __call__(self, x):
    b, c = x.shape[0], x.shape[-1]
    if c % self.num_groups:
      raise ValueError(f"GroupNorm: {c} channels do not split into {self.num_groups} groups")
    scale = self.param("scale", nn.initializers.ones, (c,), jnp.float32)
    bias = self.param("bias", nn.initializers.zeros, (c,), jnp.float32)
    per_group = c // self.num_groups
    count = (x.size // (b * c)) * per_group
    xf = x.astype(jnp.float32)
    spatial = tuple(range(1, x.ndim - 1))
    s1 = jnp.sum(xf, axis=spatial).reshape(b, self.num_groups, per_group).sum(-1)
    s2 = jnp.sum(jnp.square(xf), axis=spatial).reshape(b, self.num_groups, per_group).sum(-1)
    mean = s1 / count
    var = jnp.maximum(s2 / count - jnp.square(mean), 0.0)
    a = jnp.repeat(jax.lax.rsqrt(var + self.epsilon), per_group, axis=1) * scale  # [B, C]
    shift = bias - jnp.repeat(mean, per_group, axis=1) * a
    bshape = (b,) + (1,) * (x.ndim - 2) + (c,)
    return (xf * a.reshape(bshape) + shift.reshape(bshape)).astype(x.dtype)


def attention(q, k, v):
  """softmax(q kᵀ / sqrt(d)) v for `q, k, v: [B, N, heads, d]` -> `[B, N, heads, d]`."""
  dtype = q.dtype
  d = q.shape[-1]
  q, k, v = (jnp.transpose(a, (0, 2, 1, 3)) for a in (q, k, v))
  s = jnp.einsum("bhqd,bhkd->bhqk", q * d ** -0.5, k, preferred_element_type=jnp.float32)
  p = jnp.exp(s - jax.lax.stop_gradient(s.max(axis=-1, keepdims=True)))
  o = jnp.einsum("bhqk,bhkd->bhqd", p.astype(dtype), v, preferred_element_type=jnp.float32)
  o = o / p.sum(axis=-1, keepdims=True)
  return jnp.transpose(o, (0, 2, 1, 3)).astype(dtype)


class TimestepEmbedding(nn.Module):
  """diffusers `TimestepEmbedding`: Dense -> SiLU -> Dense, `[B, D_in]` -> `[B, dim]`."""

  dim: int
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    x = dense(self.dim, self.dtype, "linear_1")(x)
    return dense(self.dim, self.dtype, "linear_2")(silu(x))


class ResnetBlock(nn.Module):
  """diffusers `ResnetBlock2D` (time embedding added, "default" scale-shift).

  `x: [B, H, W, C_in]`, `temb: [B, D]` -> `[B, H, W, out_channels]`.
  """

  out_channels: int
  groups: int
  eps: float
  dropout: float
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x, temb, deterministic: bool):
    block_conv = lambda name, k=3: conv(self.out_channels, k, self.dtype, name, padding=_PAD1 if k == 3 else 0)
    h = block_conv("conv1")(silu(GroupNorm(self.groups, self.eps, name="norm1")(x)))
    temb = dense(self.out_channels, self.dtype, "time_emb_proj")(silu(temb)).astype(jnp.float32)
    h = (h + temb[:, None, None, :]).astype(self.dtype)  # float32 add: its gradient sums over H·W
    h = silu(GroupNorm(self.groups, self.eps, name="norm2")(h))
    h = block_conv("conv2")(nn.Dropout(self.dropout)(h, deterministic=deterministic))
    if x.shape[-1] != self.out_channels:
      x = block_conv("conv_shortcut", k=1)(x)
    return x + h


class AttentionBlock(nn.Module):
  """diffusers `Attention` as used by UNet2DModel: GroupNorm, q/k/v/out projections, residual.

  `x: [B, H, W, C]` -> same; heads = C / head_dim.
  """

  head_dim: int
  groups: int
  eps: float
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    b, hh, ww, c = x.shape
    heads = c // self.head_dim
    h = GroupNorm(self.groups, self.eps, name="group_norm")(x).reshape(b, hh * ww, c)
    q, k, v = (dense(c, self.dtype, n)(h).reshape(b, hh * ww, heads, self.head_dim)
               for n in ("to_q", "to_k", "to_v"))
    o = attention(q, k, v).reshape(b, hh * ww, c)
    return x + dense(c, self.dtype, "to_out_0")(o).reshape(b, hh, ww, c)


class Downsample(nn.Module):
  """3x3 stride-2 convolution (diffusers `Downsample2D`, padding 1): halves H and W."""

  channels: int
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    return conv(self.channels, 3, self.dtype, "conv", strides=(2, 2), padding=_PAD1)(x)


class Upsample(nn.Module):
  """Nearest-neighbour 2x then 3x3 convolution (diffusers `Upsample2D`)."""

  channels: int
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    x = jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)
    return conv(self.channels, 3, self.dtype, "conv", padding=_PAD1)(x)
