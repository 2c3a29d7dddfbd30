"""Train state (params, EMA, optimizer states, step, RNG key, task extras) and the diffusion model's optimizer."""

from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax

from mrixai_jax.data import pipeline
from mrixai_jax.errors import ConfigError
from mrixai_jax.training import optimizer


@flax.struct.dataclass
class TrainState:
  """Everything a resumed run needs besides the data position. All leaves are replicated arrays."""

  step: jax.Array  # int32 scalar: optimizer steps taken
  params: Any  # float32 pytree
  ema_params: Any  # exponential moving average of params, same structure; None for tasks without EMA
  opt_state: Any  # {phase name: optimizer state} (training/loop.py `Phase`)
  rng: jax.Array  # base key; step s uses fold_in(rng, s)
  extras: Any  # dict of arrays the task's hooks keep (the heads' `pushed` flag); {} for the diffusion model


def resolve_num_steps(train_config, num_examples: int, section: str = "train") -> int:
  """`train.num_steps`, or with `num_steps = -1` `num_epochs * steps_per_epoch` where
  steps_per_epoch = num_examples // batch_size (full batches, as the batch iterator and flax's
  imagenet example count them). Raises ConfigError naming the key for an impossible setting."""
  num_steps, batch = int(train_config.num_steps), int(train_config.batch_size)
  if num_steps > 0:
    return num_steps
  if num_steps != -1:
    raise ConfigError(f"config.{section}.num_steps: must be positive, or -1 for num_epochs epochs; got {num_steps}")
  epochs = int(train_config.get("num_epochs", 0))
  if epochs <= 0:
    raise ConfigError(f"config.{section}.num_epochs: must be positive when {section}.num_steps = -1, got {epochs}")
  steps_per_epoch = pipeline.batches_per_epoch(num_examples, batch)
  if steps_per_epoch == 0:
    raise ConfigError(f"config.{section}.batch_size: {batch} exceeds the training split ({num_examples} examples), "
                      f"so {section}.num_steps = -1 gives no full batch per epoch")
  return epochs * steps_per_epoch


def learning_rate_schedule(train_config, num_steps: int) -> optax.Schedule:
  """`lr_schedule`: "cosine" (linear warmup over `warmup_steps`, cosine decay to 0 at `num_steps`) or
  "constant" (same warmup, then flat)."""
  warmup = min(int(train_config.warmup_steps), max(num_steps - 1, 0))
  if train_config.lr_schedule == "cosine":
    return optax.warmup_cosine_decay_schedule(0.0, train_config.learning_rate, warmup, max(num_steps, warmup + 1), 0.0)
  if train_config.lr_schedule == "constant":
    return optax.join_schedules([optax.linear_schedule(0.0, train_config.learning_rate, warmup),
                                 optax.constant_schedule(train_config.learning_rate)], [warmup])
  raise ValueError(f"train.lr_schedule must be 'cosine' or 'constant', got {train_config.lr_schedule!r}")


def make_optimizer(train_config, num_steps: int) -> optax.GradientTransformation:
  """Global-norm gradient clipping (`grad_clip_norm`, <= 0 disables) then AdamW (`optimizer.adam`,
  one group, decoupled `weight_decay`)."""
  group = optimizer.Group(learning_rate_schedule(train_config, num_steps), float(train_config.weight_decay), decoupled=True)
  return optimizer.adam(group, train_config.adam_b1, train_config.adam_b2, train_config.adam_eps,
                        clip_norm=float(train_config.grad_clip_norm))


def create(params, opt_state, rng, with_ema: bool = True, extras=None) -> TrainState:
  """Fresh state at step 0; the EMA (if `with_ema`) starts at `params`."""
  return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                    ema_params=jax.tree_util.tree_map(jnp.copy, params) if with_ema else None,
                    opt_state=opt_state, rng=rng, extras={} if extras is None else extras)


def ema_decay(step, decay: float):
  """diffusers' `EMAModel` warm-up: `min(decay, (1 + step) / (10 + step))`, so early averages forget the init."""
  return jnp.minimum(decay, (1.0 + step) / (10.0 + step))


def ema_update(ema, params, decay):
  """`decay * ema + (1 - decay) * params`, leaf by leaf."""
  return jax.tree_util.tree_map(lambda e, p: decay * e + (1.0 - decay) * p, ema, params)
