"""Mask-conditioned ε-prediction UNet with the block order and parameter names of diffusers' UNet2DModel.

Parameter paths map onto diffusers state-dict keys by replacing "." before a number with "_"
(`down_blocks.0.resnets.1.conv1.weight` <-> `down_blocks_0/resnets_1/conv1/kernel`); see
`mrixai_jax.models.diffusers_port`. The first convolution runs over `concat([x_t, cond])`, as
in the peer, but the two inputs stay separate in the call so callers can treat the (constant)
conditioning differently from the noisy image.

Classifier-free guidance: `drop_cond: [B] bool` replaces the conditioning of the flagged
samples by the null mask: zeros, or with `learned_null_cond` a learned per-channel vector
(param `null_cond: [C_cond]`, the one parameter with no diffusers counterpart). `build_model` makes
the UNet of a whole config and `null_cond` gives the sampler's unconditional branch its mask, for
training and sampling alike.
"""

import dataclasses
from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from mrixai_jax.models import layers

NULL_MASKS = ("zero", "learned")
_DOWN_TYPES = {"DownBlock2D": False, "AttnDownBlock2D": True}
_UP_TYPES = {"UpBlock2D": False, "AttnUpBlock2D": True}


def _attention_flags(block_types: Sequence[str], known: dict, key: str) -> tuple:
  unknown = [b for b in block_types if b not in known]
  if unknown:
    raise ValueError(f"model.{key}: unsupported block types {unknown}; use {sorted(known)}")
  return tuple(known[b] for b in block_types)


@dataclasses.dataclass(frozen=True)
class _Blocks:
  """Shared hyper-parameters of the residual and attention blocks."""

  groups: int
  eps: float
  dropout: float
  head_dim: int
  dtype: jnp.dtype
  remat: bool

  def resnet(self, channels: int, name: str) -> nn.Module:
    cls = nn.remat(layers.ResnetBlock, static_argnums=(3,)) if self.remat else layers.ResnetBlock
    return cls(channels, self.groups, self.eps, self.dropout, self.dtype, name=name)

  def attention(self, name: str) -> nn.Module:
    return layers.AttentionBlock(self.head_dim, self.groups, self.eps, self.dtype, name=name)


class DownBlock(nn.Module):
  """diffusers `DownBlock2D` / `AttnDownBlock2D`: returns `(x, skips)` (one skip per resnet and downsampler)."""

  blocks: _Blocks
  channels: int
  num_layers: int
  with_attention: bool
  downsample: bool

  @nn.compact
  def __call__(self, x, temb, deterministic: bool):
    skips = []
    for j in range(self.num_layers):
      x = self.blocks.resnet(self.channels, f"resnets_{j}")(x, temb, deterministic)
      if self.with_attention:
        x = self.blocks.attention(f"attentions_{j}")(x)
      skips.append(x)
    if self.downsample:
      x = layers.Downsample(self.channels, self.blocks.dtype, name="downsamplers_0")(x)
      skips.append(x)
    return x, skips


class MidBlock(nn.Module):
  """diffusers `UNetMidBlock2D`: resnet, attention, resnet."""

  blocks: _Blocks
  channels: int

  @nn.compact
  def __call__(self, x, temb, deterministic: bool):
    x = self.blocks.resnet(self.channels, "resnets_0")(x, temb, deterministic)
    x = self.blocks.attention("attentions_0")(x)
    return self.blocks.resnet(self.channels, "resnets_1")(x, temb, deterministic)


class UpBlock(nn.Module):
  """diffusers `UpBlock2D` / `AttnUpBlock2D`: each resnet first concatenates the last remaining skip."""

  blocks: _Blocks
  channels: int
  num_layers: int
  with_attention: bool
  upsample: bool

  @nn.compact
  def __call__(self, x, skips, temb, deterministic: bool):
    skips = list(skips)
    for j in range(self.num_layers):
      x = jnp.concatenate([x, skips.pop()], axis=-1)
      x = self.blocks.resnet(self.channels, f"resnets_{j}")(x, temb, deterministic)
      if self.with_attention:
        x = self.blocks.attention(f"attentions_{j}")(x)
    if self.upsample:
      x = layers.Upsample(self.channels, self.blocks.dtype, name="upsamplers_0")(x)
    return x


class UNet(nn.Module):
  """`apply(vars, x_t [B,H,W,1], t [B] int, cond [B,H,W,C_cond], train=False) -> eps [B,H,W,out]`.

  H and W must be divisible by 2**(len(block_out_channels) - 1). Dropout (train=True) needs
  `rngs={"dropout": key}`. Params are float32; `dtype` is the compute dtype (norms and softmax
  stay float32); the output is float32.
  """

  in_channels: int
  out_channels: int
  block_out_channels: Sequence[int]
  down_block_types: Sequence[str]
  up_block_types: Sequence[str]
  layers_per_block: int
  attention_head_dim: int
  norm_num_groups: int
  norm_eps: float
  dropout: float = 0.0
  time_embedding_dim: int = 0  # MLP width; 0 -> 4 * block_out_channels[0] (diffusers' default)
  flip_sin_to_cos: bool = True
  freq_shift: float = 0.0
  learned_null_cond: bool = False
  dtype: jnp.dtype = jnp.float32
  remat: bool = False

  @classmethod
  def from_config(cls, model_config, learned_null_cond: bool = False) -> "UNet":
    """Builds the UNet from the config's `model` section."""
    same_name = ("in_channels", "out_channels", "layers_per_block", "attention_head_dim", "norm_num_groups",
                 "norm_eps", "dropout", "time_embedding_dim", "flip_sin_to_cos", "freq_shift", "remat")
    return cls(**{key: model_config[key] for key in same_name},
               **{key: tuple(model_config[key])
                  for key in ("block_out_channels", "down_block_types", "up_block_types")},
               learned_null_cond=learned_null_cond, dtype=jnp.dtype(model_config.compute_dtype))

  @nn.compact
  def __call__(self, x_t, t, cond, train: bool = False, drop_cond=None):
    chs = tuple(self.block_out_channels)
    n = len(chs)
    down_attn = _attention_flags(self.down_block_types, _DOWN_TYPES, "down_block_types")
    up_attn = _attention_flags(self.up_block_types, _UP_TYPES, "up_block_types")
    if len(down_attn) != n or len(up_attn) != n:
      raise ValueError(f"model: {n} block_out_channels need {n} down and {n} up block types")
    if x_t.shape[-1] + cond.shape[-1] != self.in_channels:
      raise ValueError(f"UNet: x_t has {x_t.shape[-1]} and cond {cond.shape[-1]} channels, "
                       f"model.in_channels is {self.in_channels}")
    factor = 2 ** (n - 1)
    if x_t.shape[1] % factor or x_t.shape[2] % factor:
      raise ValueError(f"UNet: image size {x_t.shape[1:3]} is not divisible by {factor}")

    if self.learned_null_cond:
      null = self.param("null_cond", nn.initializers.zeros, (cond.shape[-1],), jnp.float32)
    else:
      null = jnp.zeros((cond.shape[-1],), jnp.float32)
    if drop_cond is not None:
      cond = jnp.where(drop_cond[:, None, None, None], null, cond)

    dtype, deterministic = self.dtype, not train
    blocks = _Blocks(self.norm_num_groups, self.norm_eps, self.dropout, self.attention_head_dim, dtype, self.remat)
    emb = layers.timestep_embedding(t, chs[0], self.flip_sin_to_cos, self.freq_shift)
    temb = layers.TimestepEmbedding(self.time_embedding_dim or 4 * chs[0], dtype, name="time_embedding")(emb)

    x = jnp.concatenate([x_t, cond], axis=-1).astype(dtype)
    x = layers.conv(chs[0], 3, dtype, "conv_in", padding=((1, 1), (1, 1)))(x)
    skips = [x]
    for i, ch in enumerate(chs):
      x, block_skips = DownBlock(blocks, ch, self.layers_per_block, down_attn[i], i < n - 1,
                                 name=f"down_blocks_{i}")(x, temb, deterministic)
      skips += block_skips
    x = MidBlock(blocks, chs[-1], name="mid_block")(x, temb, deterministic)
    for i, ch in enumerate(reversed(chs)):
      k = self.layers_per_block + 1
      x = UpBlock(blocks, ch, k, up_attn[i], i < n - 1, name=f"up_blocks_{i}")(x, skips[-k:], temb, deterministic)
      skips = skips[:-k]

    x = layers.silu(layers.GroupNorm(self.norm_num_groups, self.norm_eps, name="conv_norm_out")(x))
    x = layers.conv(self.out_channels, 3, dtype, "conv_out", padding=((1, 1), (1, 1)))(x)
    return x.astype(jnp.float32)


def model_fn(model: UNet):
  """The sampler's model contract: `(params, x_t, t, cond) -> output` (ε, v or x0 by
  `diffusion.prediction`), deterministic (no dropout)."""
  return lambda params, x_t, t, cond: model.apply({"params": params}, x_t, t, cond)


def build_model(config) -> UNet:
  """The UNet of `config.model`, with a learned null mask when `diffusion.null_mask == "learned"`."""
  if config.diffusion.null_mask not in NULL_MASKS:
    raise ValueError(f"diffusion.null_mask must be one of {NULL_MASKS}, got {config.diffusion.null_mask!r}")
  return UNet.from_config(config.model, learned_null_cond=config.diffusion.null_mask == "learned")


def null_cond(params):
  """The null mask the sampler's unconditional branch uses: the learned one, or zeros."""
  return params["null_cond"] if "null_cond" in params else jnp.zeros(())
