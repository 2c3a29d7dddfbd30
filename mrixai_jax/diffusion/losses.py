"""ε-prediction training loss (Ho et al. 2020, eq. 14) with optional classifier-free-guidance dropout."""

from typing import Callable

import jax
import jax.numpy as jnp

from mrixai_jax.diffusion.schedule import Schedule, q_sample

# (x_t [B,H,W,C], t [B] int32, cond [B,H,W,C_cond], drop_cond [B] bool | None, dropout_key) -> eps [B,H,W,C]
NoisePredictor = Callable


def epsilon_mse(predict: NoisePredictor, schedule: Schedule, x0, cond, key, p_uncond: float = 0.0):
  """Mean over pixels and batch of `|eps - eps_hat(x_t, t, cond)|^2`, t ~ U{0..T-1}, eps ~ N(0, I).

  `x0: [B,H,W,C]` float32 in [-1,1]; `cond: [B,H,W,C_cond]`. With `p_uncond > 0` each sample's
  conditioning is dropped (replaced by the model's null mask) with that probability.
  Returns `(loss scalar, {"loss": loss})`.
  """
  k_t, k_noise, k_drop, k_dropout = jax.random.split(key, 4)
  b = x0.shape[0]
  t = jax.random.randint(k_t, (b,), 0, schedule.num_timesteps, dtype=jnp.int32)
  noise = jax.random.normal(k_noise, x0.shape, jnp.float32)
  x_t = q_sample(schedule, x0, t, noise)
  drop = jax.random.bernoulli(k_drop, p_uncond, (b,)) if p_uncond > 0 else None
  eps = predict(x_t, t, cond, drop, k_dropout)
  loss = jnp.mean(jnp.square(eps.astype(jnp.float32) - noise))
  return loss, {"loss": loss}
