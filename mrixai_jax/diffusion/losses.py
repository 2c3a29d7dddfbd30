"""The denoising loss (Ho et al. 2020, eq. 14, generalised to ε / v / x0 outputs and min-SNR weights)
with optional classifier-free-guidance dropout."""

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from mrixai_jax.diffusion import parameterization
from mrixai_jax.diffusion import schedule as schedule_lib
from mrixai_jax.diffusion.schedule import Schedule

# (x_t [B,H,W,C], t [B] int32, cond [B,H,W,C_cond], drop_cond [B] bool | None, dropout_key) -> output [B,H,W,C]
Denoiser = Callable


def denoising_mse(predict: Denoiser, schedule: Schedule, x0, cond, key, *, p_uncond: float = 0.0,
                  prediction: str = "eps", weights: np.ndarray = None):
  """Mean over the batch of `w_t · mean_pixels |target - output(x_t, t, cond)|^2`, t ~ U{0..T-1},
  ε ~ N(0, I), target by `prediction` (`parameterization.training_target`).

  `x0: [B,H,W,C]` float32 in [-1,1]; `cond: [B,H,W,C_cond]`; `weights: [T]` per-timestep loss
  weights (`parameterization.loss_weights`; None: uniform). With `p_uncond > 0` each sample's
  conditioning is dropped (replaced by the model's null mask) with that probability.
  Returns `(loss scalar, {"loss": loss, "mse": unweighted mean})`.
  """
  k_t, k_noise, k_drop, k_dropout = jax.random.split(key, 4)
  b = x0.shape[0]
  t = jax.random.randint(k_t, (b,), 0, schedule.num_timesteps, dtype=jnp.int32)
  noise = jax.random.normal(k_noise, x0.shape, jnp.float32)
  alpha, sigma = schedule_lib.alpha_sigma(schedule, t, x0.ndim)
  x_t = alpha * x0 + sigma * noise  # schedule_lib.q_sample, with α_t and σ_t kept for the target
  drop = jax.random.bernoulli(k_drop, p_uncond, (b,)) if p_uncond > 0 else None
  output = predict(x_t, t, cond, drop, k_dropout)
  target = parameterization.training_target(prediction, x0, noise, alpha, sigma)
  per_image = jnp.mean(jnp.square(output.astype(jnp.float32) - target).reshape(b, -1), axis=1)
  mse = jnp.mean(per_image)
  loss = mse if weights is None else jnp.mean(jnp.asarray(weights, jnp.float32)[t] * per_image)
  return loss, {"loss": loss, "mse": mse}
