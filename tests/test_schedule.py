"""Schedule quantities vs an independent float64 transcription of Ho et al. (2020), eq. 4-7.

The reference below is written from the paper with explicit per-timestep loops (no shared code
with schedule.py): alpha_t = 1 - beta_t, alphabar_t = prod_{s<=t} alpha_s (eq. 4),
q(x_{t-1} | x_t, x0) = N(mu~_t, beta~_t) with (eq. 6-7)
  mu~_t = sqrt(alphabar_{t-1}) beta_t / (1 - alphabar_t) x0 + sqrt(alpha_t) (1 - alphabar_{t-1}) / (1 - alphabar_t) x_t,
  beta~_t = (1 - alphabar_{t-1}) / (1 - alphabar_t) beta_t,  alphabar_{-1} := 1.
"""

import math

import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from mrixai_jax.diffusion import parameterization
from mrixai_jax.diffusion import schedule as schedule_lib


def _reference(betas):
  t_max = len(betas)
  abar, abar_prev, mean_x0, mean_xt, var = (np.zeros(t_max) for _ in range(5))
  running = 1.0
  for t in range(t_max):
    abar_prev[t] = running
    running *= 1.0 - betas[t]
    abar[t] = running
    mean_x0[t] = math.sqrt(abar_prev[t]) * betas[t] / (1.0 - abar[t])
    mean_xt[t] = math.sqrt(1.0 - betas[t]) * (1.0 - abar_prev[t]) / (1.0 - abar[t])
    var[t] = (1.0 - abar_prev[t]) / (1.0 - abar[t]) * betas[t]
  return dict(alphas_cumprod=abar, alphas_cumprod_prev=abar_prev, posterior_mean_coef1=mean_x0,
              posterior_mean_coef2=mean_xt, posterior_variance=var)


def _linear_reference(t_max, start, end):
  return np.array([start + (end - start) * t / (t_max - 1) for t in range(t_max)])


def _cosine_reference(t_max, s):
  """Nichol & Dhariwal (2021) eq. 17: alphabar(t) = f(t)/f(0), f(t) = cos((t/T + s)/(1 + s) pi/2)^2; beta <= 0.999."""
  f = [math.cos((t / t_max + s) / (1 + s) * math.pi / 2) ** 2 for t in range(t_max + 1)]
  return np.array([min(1.0 - (f[t + 1] / f[0]) / (f[t] / f[0]), 0.999) for t in range(t_max)])


def _config(kind):
  return ml_collections.ConfigDict(dict(num_timesteps=1000, beta_schedule=kind, beta_start=1e-4, beta_end=0.02,
                                        cosine_s=0.008))


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_schedule_arrays_match_paper(kind):
  sched = schedule_lib.from_config(_config(kind))
  betas = _linear_reference(1000, 1e-4, 0.02) if kind == "linear" else _cosine_reference(1000, 0.008)
  np.testing.assert_allclose(sched.betas, betas, atol=1e-6, rtol=0)
  for name, ref in _reference(betas).items():
    np.testing.assert_allclose(getattr(sched, name), ref, atol=1e-6, rtol=0, err_msg=name)
  np.testing.assert_allclose(np.exp(sched.posterior_log_variance_clipped[1:]), _reference(betas)["posterior_variance"][1:],
                             rtol=1e-6)


def test_jnp_helpers_match_paper():
  sched = schedule_lib.from_config(_config("linear"))
  ref = _reference(_linear_reference(1000, 1e-4, 0.02))
  rng = np.random.default_rng(0)
  t = np.array([0, 1, 250, 500, 999])
  x0 = rng.uniform(-1, 1, (5, 4, 4, 1))
  noise = rng.standard_normal((5, 4, 4, 1))
  abar = ref["alphas_cumprod"][t][:, None, None, None]
  x_t = np.sqrt(abar) * x0 + np.sqrt(1 - abar) * noise  # eq. 4 reparametrised
  got = schedule_lib.q_sample(sched, jnp.asarray(x0, jnp.float32), jnp.asarray(t), jnp.asarray(noise, jnp.float32))
  np.testing.assert_allclose(got, x_t, atol=1e-6, rtol=0)
  mean, var, _ = schedule_lib.posterior_mean_variance(sched, jnp.asarray(x0, jnp.float32), jnp.asarray(x_t, jnp.float32),
                                                       jnp.asarray(t))
  c1, c2 = (ref[k][t][:, None, None, None] for k in ("posterior_mean_coef1", "posterior_mean_coef2"))
  np.testing.assert_allclose(mean, c1 * x0 + c2 * x_t, atol=1e-6, rtol=0)
  np.testing.assert_allclose(var[:, 0, 0, 0], ref["posterior_variance"][t], atol=1e-6, rtol=0)
  # Inverting eq. 4 amplifies float32 rounding of x_t by 1/sqrt(alphabar) (up to ~160 at t = 999).
  alpha, sigma = schedule_lib.alpha_sigma(sched, jnp.asarray(t), x0.ndim)
  np.testing.assert_allclose(alpha[:, 0, 0, 0] ** 2, ref["alphas_cumprod"][t], atol=1e-6, rtol=0)
  np.testing.assert_allclose(sigma[:, 0, 0, 0] ** 2, 1 - ref["alphas_cumprod"][t], atol=1e-6, rtol=0)
  x0_hat, eps_hat = parameterization.to_x0_eps("eps", jnp.asarray(noise, jnp.float32), jnp.asarray(x_t, jnp.float32),
                                               alpha, sigma)
  np.testing.assert_allclose(x0_hat, x0, atol=1e-6 / np.sqrt(abar.min()), rtol=0)
  np.testing.assert_array_equal(eps_hat, jnp.asarray(noise, jnp.float32))


def test_unknown_schedule_is_rejected():
  with pytest.raises(ValueError, match="beta_schedule"):
    schedule_lib.from_config(_config("quadratic"))
