"""Noise schedules and the closed-form quantities of Ho et al. (2020), eq. 4-7.

Schedule arrays are float64 numpy `[T]`, computed once; the jnp helpers below index them with
integer timesteps `t: [B] int32` in `[0, T)` and broadcast over image batches `[B, H, W, C]`.
Every coefficient (e.g. sqrt(1 - abar_t)) is formed in float64 before the float32 cast: forming
1 - abar_t in float32 loses ~3 significant digits at small t.
"""

import dataclasses

import jax.numpy as jnp
import numpy as np


@dataclasses.dataclass(frozen=True)
class Schedule:
  """Per-timestep constants, all float64 `[T]` numpy arrays."""

  betas: np.ndarray
  alphas_cumprod: np.ndarray
  alphas_cumprod_prev: np.ndarray
  posterior_variance: np.ndarray
  posterior_log_variance_clipped: np.ndarray
  posterior_mean_coef1: np.ndarray  # multiplies x0
  posterior_mean_coef2: np.ndarray  # multiplies x_t

  @property
  def num_timesteps(self) -> int:
    return int(self.betas.shape[0])


def linear_betas(num_timesteps: int, beta_start: float, beta_end: float) -> np.ndarray:
  """Ho et al.'s linear schedule, `[T]` float64."""
  return np.linspace(beta_start, beta_end, num_timesteps, dtype=np.float64)


def cosine_betas(num_timesteps: int, s: float, max_beta: float = 0.999) -> np.ndarray:
  """Nichol & Dhariwal (2021) cosine schedule, betas clipped at `max_beta`, `[T]` float64."""
  steps = np.arange(num_timesteps + 1, dtype=np.float64) / num_timesteps
  f = np.cos((steps + s) / (1 + s) * np.pi / 2) ** 2
  return np.minimum(1.0 - f[1:] / f[:-1], max_beta)


def rescale_zero_terminal_snr(betas: np.ndarray) -> np.ndarray:
  """Lin et al. (2024), Algorithm 1: shift and scale sqrt(abar) so that abar_{T-1} = 0 (zero terminal
  SNR: x_T carries no signal, as the pure noise sampling starts from) while abar_0 is unchanged.

  `betas: [T]` float64 -> rescaled betas `[T]` (the last one is 1).
  """
  sqrt_abar = np.sqrt(np.cumprod(1.0 - np.asarray(betas, np.float64)))
  first, last = sqrt_abar[0], sqrt_abar[-1]
  sqrt_abar = (sqrt_abar - last) * first / (first - last)
  abar = sqrt_abar**2
  return 1.0 - np.append(abar[0], abar[1:] / abar[:-1])


def make_schedule(betas: np.ndarray) -> Schedule:
  """Derives every posterior constant from `betas: [T]` (float64 arithmetic)."""
  betas = np.asarray(betas, dtype=np.float64)
  alphas_cumprod = np.cumprod(1.0 - betas)
  alphas_cumprod_prev = np.append(1.0, alphas_cumprod[:-1])
  posterior_variance = betas * (1.0 - alphas_cumprod_prev) / (1.0 - alphas_cumprod)
  return Schedule(
      betas=betas,
      alphas_cumprod=alphas_cumprod,
      alphas_cumprod_prev=alphas_cumprod_prev,
      posterior_variance=posterior_variance,
      # The variance at t = 0 is 0; Ho et al.'s code uses the t = 1 value for the log.
      posterior_log_variance_clipped=np.log(np.append(posterior_variance[1], posterior_variance[1:])),
      posterior_mean_coef1=betas * np.sqrt(alphas_cumprod_prev) / (1.0 - alphas_cumprod),
      posterior_mean_coef2=(1.0 - alphas_cumprod_prev) * np.sqrt(1.0 - betas) / (1.0 - alphas_cumprod),
  )


def from_config(diffusion_config) -> Schedule:
  """Schedule from the config's `diffusion` section (`beta_schedule`: linear | cosine; with
  `zero_terminal_snr` the betas are rescaled by `rescale_zero_terminal_snr`)."""
  if diffusion_config.beta_schedule == "linear":
    betas = linear_betas(diffusion_config.num_timesteps, diffusion_config.beta_start, diffusion_config.beta_end)
  elif diffusion_config.beta_schedule == "cosine":
    betas = cosine_betas(diffusion_config.num_timesteps, diffusion_config.cosine_s)
  else:
    raise ValueError(f"diffusion.beta_schedule must be 'linear' or 'cosine', got {diffusion_config.beta_schedule!r}")
  if diffusion_config.get("zero_terminal_snr", False):
    betas = rescale_zero_terminal_snr(betas)
  return make_schedule(betas)


def _gather(values: np.ndarray, t, ndim: int):
  """`values[t]` as float32, shaped `[B, 1, ..., 1]` to broadcast against a rank-`ndim` batch."""
  out = jnp.asarray(values, jnp.float32)[t]
  return out.reshape(out.shape + (1,) * (ndim - 1))


def alpha_sigma(schedule: Schedule, t, ndim: int) -> tuple:
  """`(α_t, σ_t) = (sqrt(abar_t), sqrt(1 - abar_t))` float32 for `t [B]`, each `[B, 1, ..., 1]` to
  broadcast against a rank-`ndim` batch."""
  abar = schedule.alphas_cumprod
  return _gather(np.sqrt(abar), t, ndim), _gather(np.sqrt(1.0 - abar), t, ndim)


def q_sample(schedule: Schedule, x0, t, noise):
  """Forward process (eq. 4): `sqrt(abar_t) x0 + sqrt(1 - abar_t) noise`; `x0, noise: [B, ...]`."""
  alpha, sigma = alpha_sigma(schedule, t, x0.ndim)
  return alpha * x0 + sigma * noise


def posterior_mean_variance(schedule: Schedule, x0, x_t, t):
  """q(x_{t-1} | x_t, x0) (eq. 6-7): returns `(mean [B, ...], variance [B,1..], log_variance [B,1..])`."""
  n = x_t.ndim
  mean = _gather(schedule.posterior_mean_coef1, t, n) * x0 + _gather(schedule.posterior_mean_coef2, t, n) * x_t
  return (mean, _gather(schedule.posterior_variance, t, n),
          _gather(schedule.posterior_log_variance_clipped, t, n))
