"""Parameterisations (ε / v / x0), zero terminal SNR, timestep spacings, min-SNR weights, DDIM with
η > 0, (SDE-)DPM-Solver++(2M) and Karras sigmas against diffusers' schedulers: the same model outputs in, the same x_{t-1} out.

Step by step: at every step both implementations get the same x_t (ours, recorded by the
sampler's trajectory) and the same model output; diffusers' `step` must return our next state to
ATOL times the state's scale max(1, max|x_{t-1}|); stochastic steps get our noise z of the step as
diffusers' `variance_noise` (both compute in float32, whose rounding grows with
the values: unclipped ε-models drive x_t to ~300 here; diffusers keeps its multistep history itself).
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mrixai_jax.diffusion import losses, parameterization, sampling
from mrixai_jax.diffusion import schedule as schedule_lib

torch = pytest.importorskip("torch")
diffusers = pytest.importorskip("diffusers")

T, BETA_START, BETA_END = 1000, 1e-4, 0.02
SIZE, BATCH = 8, 2
ATOL = 1e-5
PREDICTION_TYPES = {"eps": "epsilon", "v": "v_prediction", "x0": "sample"}


def _schedule(zero_snr=False):
  betas = schedule_lib.linear_betas(T, BETA_START, BETA_END)
  return schedule_lib.make_schedule(schedule_lib.rescale_zero_terminal_snr(betas) if zero_snr else betas)


def _model_jax(params, x, t, cond):
  """An analytic stand-in for the UNet: smooth, bounded, depends on x, t and the mask."""
  phase = jnp.cos(t.astype(jnp.float32) * 0.013)[:, None, None, None]
  return 0.8 * jnp.tanh(0.9 * x + 0.7 * jnp.sum(cond, -1, keepdims=True) * phase) + 0.1 * phase + params


def _model_np(x, t, cond, params=0.05):
  phase = np.cos(np.float32(t) * np.float32(0.013))
  return 0.8 * np.tanh(0.9 * x + 0.7 * np.sum(cond, -1, keepdims=True) * phase) + 0.1 * phase + params


def _inputs(seed):
  rng = np.random.default_rng(seed)
  labels = rng.integers(0, 4, size=(BATCH, SIZE, SIZE))
  cond = (labels[..., None] == np.arange(1, 4)).astype(np.float32)
  return cond, sampling.image_keys(jax.random.key(seed), 0, BATCH)


def _run_ours(plan, prediction, clip, seed):
  """Our states `[B, S+1, ...]` (x_T .. x_0), the conditioning and the noise z `[S, B, ...]` our
  sampler drew at each step (zeros for a deterministic plan)."""
  cond, keys = _inputs(seed)
  sampler = sampling.Sampler(_model_jax, plan, prediction=prediction, clip_sample=clip,
                             trajectory_indices=range(plan.num_steps))
  out = sampler(jnp.float32(0.05), keys, jnp.asarray(cond))
  states = np.concatenate([np.asarray(out.trajectory_xt), np.asarray(out.samples)[:, None]], axis=1)
  noise = np.stack([np.asarray(sampling.step_noise(keys, i, (SIZE, SIZE, 1))) for i in range(plan.num_steps)])
  return cond, states, noise


def _with_diffusers_alphas_cumprod(schedule, sched):
  """`schedule` with diffusers' own ᾱ (float32, widened). For Karras levels only: float32 keeps
  1 − ᾱ_0 to ~8e-5 relative, and ρ = 7 carries that error into every low level (ours are float64),
  so the algorithm is compared on the same ᾱ."""
  return dataclasses.replace(schedule, alphas_cumprod=sched.alphas_cumprod.numpy().astype(np.float64))


def _expected_timesteps(sched, zero_snr, karras):
  """diffusers' timesteps; with Karras levels at zero terminal SNR the first is T - 1 in ours (its
  level is s(T-1); diffusers' interpolation of that level lands on 995, see sampling's docstring)."""
  expected = sched.timesteps.numpy().copy()
  if zero_snr and karras:
    assert 990 <= expected[0] < T - 1
    expected[0] = T - 1
  return expected


def _compare_steps(sched, plan, states, cond, clip_final, noise=None, timesteps=None, **step_kwargs):
  """Feeds diffusers each of our states x_t with the model's output at our timestep (and, for a
  stochastic plan, our step's noise z as `variance_noise`); checks its x_{t-1}. `timesteps`: the
  expected timesteps when they are not diffusers' own."""
  np.testing.assert_array_equal(plan.timesteps, sched.timesteps.numpy() if timesteps is None else timesteps)
  nchw = lambda a: torch.tensor(np.moveaxis(a, -1, 1))  # pylint: disable=unnecessary-lambda-assignment
  for i, t in enumerate(sched.timesteps):
    x = states[:, i]
    out = _model_np(x, int(plan.timesteps[i]), cond).astype(np.float32)
    if noise is not None:
      step_kwargs["variance_noise"] = nchw(noise[i])
    got = np.moveaxis(sched.step(nchw(out), t, nchw(x), **step_kwargs).prev_sample.numpy(), 1, -1)
    if i == len(sched.timesteps) - 1 and clip_final:
      got = np.clip(got, -1, 1)
    err = np.abs(got - states[:, i + 1]).max()
    scale = max(1.0, float(np.abs(states[:, i + 1]).max()))
    assert err <= ATOL * scale, f"step {i} (t={int(t)}): |diffusers - ours| = {err:.2e} at scale {scale:.1f}"


def test_zero_terminal_snr_rescale_matches_diffusers():
  from diffusers.schedulers.scheduling_ddim import rescale_zero_terminal_snr  # pylint: disable=g-import-not-at-top
  betas = schedule_lib.linear_betas(T, BETA_START, BETA_END)
  ours = schedule_lib.rescale_zero_terminal_snr(betas)
  ref = rescale_zero_terminal_snr(torch.tensor(betas, dtype=torch.float64)).numpy()
  np.testing.assert_allclose(ours, ref, rtol=1e-12, atol=1e-15)
  abar = np.cumprod(1 - ours)
  assert abar[-1] == 0.0 and abs(abar[0] - (1 - BETA_START)) < 1e-12


@pytest.mark.parametrize("spacing,num_steps", [("leading", 50), ("trailing", 50), ("linspace", 20),
                                               ("trailing", 7)])
def test_timesteps_match_diffusers(spacing, num_steps):
  ddim = diffusers.DDIMScheduler(num_train_timesteps=T, timestep_spacing=spacing, steps_offset=0)
  dpm = diffusers.DPMSolverMultistepScheduler(num_train_timesteps=T, timestep_spacing=spacing, steps_offset=0)
  ddim.set_timesteps(num_steps)
  dpm.set_timesteps(num_steps)
  np.testing.assert_array_equal(sampling.spaced_timesteps(spacing, num_steps, T, "ddim"), ddim.timesteps.numpy())
  np.testing.assert_array_equal(sampling.spaced_timesteps(spacing, num_steps, T, "dpmpp2m"), dpm.timesteps.numpy())


DDIM_CASES = [  # prediction, zero terminal SNR, spacing, steps, eta, clip
    ("eps", False, "leading", 25, 0.0, True),
    ("v", False, "leading", 25, 0.0, True),
    ("x0", False, "trailing", 25, 0.0, False),
    ("v", True, "trailing", 25, 0.0, True),
    ("v", True, "trailing", 10, 0.0, False),
    ("eps", False, "linspace", 20, 0.0, False),
    ("v", True, "trailing", 20, 1.0, True),  # the demo's sampler: DDIM with the posterior's noise
    ("eps", False, "leading", 10, 0.5, False),
]


@pytest.mark.parametrize("prediction,zero_snr,spacing,steps,eta,clip", DDIM_CASES)
def test_ddim_steps_match_diffusers(prediction, zero_snr, spacing, steps, eta, clip):
  plan = sampling.ddim_plan(_schedule(zero_snr), steps, eta, set_alpha_to_one=True, spacing=spacing)
  assert plan.stochastic == (eta > 0)
  cond, states, noise = _run_ours(plan, prediction, clip, seed=steps)
  sched = diffusers.DDIMScheduler(num_train_timesteps=T, beta_start=BETA_START, beta_end=BETA_END,
                                  beta_schedule="linear", clip_sample=clip, set_alpha_to_one=True,
                                  timestep_spacing=spacing, steps_offset=0, prediction_type=PREDICTION_TYPES[prediction],
                                  rescale_betas_zero_snr=zero_snr)
  sched.set_timesteps(steps)
  _compare_steps(sched, plan, states, cond, clip_final=clip, noise=noise if eta > 0 else None, eta=eta)


DPM_CASES = [  # sampler, prediction, zero terminal SNR, spacing ("karras": Karras sigmas), steps
    ("dpmpp2m", "eps", False, "linspace", 20),
    ("dpmpp2m", "eps", False, "leading", 10),
    ("dpmpp2m", "v", False, "trailing", 20),
    ("dpmpp2m", "v", True, "trailing", 20),
    ("dpmpp2m", "v", True, "trailing", 10),
    ("dpmpp2m", "x0", False, "linspace", 12),
    ("dpmpp2m", "v", True, "karras", 20),
    ("dpmpp2m", "eps", False, "karras", 15),
    ("dpmpp2m_sde", "v", True, "trailing", 20),
    ("dpmpp2m_sde", "v", True, "karras", 20),  # the fast sampler of docs/ablation/quality_vs_steps.md
    ("dpmpp2m_sde", "eps", False, "leading", 10),
    ("dpmpp2m_sde", "x0", False, "karras", 12),
]


@pytest.mark.parametrize("sampler,prediction,zero_snr,spacing,steps", DPM_CASES)
def test_dpmpp2m_steps_match_diffusers(sampler, prediction, zero_snr, spacing, steps):
  sde, karras = sampler == "dpmpp2m_sde", spacing == "karras"
  sched = diffusers.DPMSolverMultistepScheduler(
      num_train_timesteps=T, beta_start=BETA_START, beta_end=BETA_END, beta_schedule="linear",
      algorithm_type="sde-dpmsolver++" if sde else "dpmsolver++", solver_order=2, solver_type="midpoint",
      lower_order_final=True, final_sigmas_type="zero", timestep_spacing="trailing" if karras else spacing,
      use_karras_sigmas=karras, steps_offset=0, prediction_type=PREDICTION_TYPES[prediction],
      rescale_betas_zero_snr=zero_snr)
  sched.set_timesteps(steps)
  schedule = _with_diffusers_alphas_cumprod(_schedule(zero_snr), sched) if karras else _schedule(zero_snr)
  plan = sampling.dpmpp2m_plan(schedule, steps, "trailing" if karras else spacing, sde=sde, karras_sigmas=karras)
  assert plan.kind == sampler and plan.multistep and plan.stochastic == sde
  cond, states, noise = _run_ours(plan, prediction, clip=False, seed=100 + steps)
  _compare_steps(sched, plan, states, cond, clip_final=False, noise=noise if sde else None,
                 timesteps=_expected_timesteps(sched, zero_snr, karras))


@pytest.mark.parametrize("zero_snr,steps", [(True, 20), (False, 50), (True, 7)])
def test_karras_levels_match_diffusers(zero_snr, steps):
  sched = diffusers.DPMSolverMultistepScheduler(num_train_timesteps=T, beta_start=BETA_START, beta_end=BETA_END,
                                                use_karras_sigmas=True, rescale_betas_zero_snr=zero_snr)
  sched.set_timesteps(steps)
  levels = sched.sigmas.numpy()[:-1].astype(np.float64)  # float32 in diffusers
  plan = sampling.dpmpp2m_plan(_with_diffusers_alphas_cumprod(_schedule(zero_snr), sched), steps, karras_sigmas=True)
  np.testing.assert_array_equal(plan.timesteps, _expected_timesteps(sched, zero_snr, karras=True))
  np.testing.assert_allclose(plan.sigma / plan.alpha, levels, rtol=1e-6)
  ours = sampling.dpmpp2m_plan(_schedule(zero_snr), steps, karras_sigmas=True)  # float64 ᾱ: within float32's error
  np.testing.assert_array_equal(ours.timesteps, plan.timesteps)
  np.testing.assert_allclose(ours.sigma / ours.alpha, levels, rtol=2e-4)
  assert np.all(np.diff(plan.timesteps) <= 0) and plan.timesteps[0] == T - 1


def test_dpmpp2m_last_step_returns_x0_prediction():
  plan = sampling.dpmpp2m_plan(_schedule(), 10)
  assert plan.x0_coef[-1] == pytest.approx(1.0) and plan.xt_coef[-1] == 0 and plan.prev_x0_coef[-1] == 0
  assert plan.prev_x0_coef[0] == 0  # first order at the start (no history)


@pytest.mark.parametrize("prediction", ["eps", "v", "x0"])
def test_training_target_and_inversion_match_diffusers(prediction):
  rng = np.random.default_rng(3)
  x0, noise = rng.normal(size=(2, 4, 4, 1)).astype(np.float32), rng.normal(size=(2, 4, 4, 1)).astype(np.float32)
  t = np.array([3, 911])
  sched = diffusers.DDPMScheduler(num_train_timesteps=T, beta_start=BETA_START, beta_end=BETA_END,
                                  prediction_type=PREDICTION_TYPES[prediction])
  abar = _schedule().alphas_cumprod[t][:, None, None, None]
  alpha, sigma = np.sqrt(abar), np.sqrt(1 - abar)
  nchw = lambda a: torch.tensor(np.moveaxis(a, -1, 1))  # pylint: disable=unnecessary-lambda-assignment
  x_t = np.moveaxis(sched.add_noise(nchw(x0), nchw(noise), torch.tensor(t)).numpy(), 1, -1)
  target = np.asarray(parameterization.training_target(prediction, x0, noise, alpha, sigma))
  ref = {"eps": noise, "x0": x0,
         "v": np.moveaxis(sched.get_velocity(nchw(x0), nchw(noise), torch.tensor(t)).numpy(), 1, -1)}[prediction]
  np.testing.assert_allclose(target, ref, rtol=0, atol=5e-6)  # diffusers: float32 coefficients
  back_x0, back_eps = parameterization.to_x0_eps(prediction, target, x_t, alpha, sigma)
  np.testing.assert_allclose(back_x0, x0, rtol=0, atol=2e-4)  # /alpha at t = 911 amplifies x_t rounding
  np.testing.assert_allclose(back_eps, noise, rtol=0, atol=2e-4)


def _hang_min_snr_weights(alphas_cumprod, prediction, gamma):
  """Min-SNR-γ as diffusers' training examples compute it (snr, clamp, divide)."""
  snr = alphas_cumprod / (1 - alphas_cumprod)
  clamped = np.minimum(snr, gamma)
  return {"eps": clamped / snr, "v": clamped / (snr + 1), "x0": clamped}[prediction]


@pytest.mark.parametrize("prediction", ["eps", "v", "x0"])
def test_min_snr_weights(prediction):
  abar = _schedule().alphas_cumprod
  got = parameterization.loss_weights(prediction, "min_snr", abar, 5.0)
  np.testing.assert_allclose(got, _hang_min_snr_weights(abar, prediction, 5.0), rtol=1e-12)
  assert np.all(parameterization.loss_weights(prediction, "uniform", abar, 5.0) == 1.0)
  # At zero terminal SNR the last weight stays finite: 1 for eps, 0 for v and x0.
  last = parameterization.loss_weights(prediction, "min_snr", _schedule(zero_snr=True).alphas_cumprod, 5.0)[-1]
  assert last == {"eps": 1.0, "v": 0.0, "x0": 0.0}[prediction]


def test_weighted_loss_equals_numpy_reference():
  """denoising_mse with min-SNR weights for v: Σ_b w_{t_b}·mean|v_b − out_b|² / B, with its own draws."""
  rng = np.random.default_rng(0)
  x0 = rng.uniform(-1, 1, (4, 8, 8, 1)).astype(np.float32)
  cond = np.zeros((4, 8, 8, 3), np.float32)
  schedule = _schedule(zero_snr=True)
  weights = parameterization.loss_weights("v", "min_snr", schedule.alphas_cumprod, 5.0)
  predict = lambda x_t, t, c, drop, key: 0.5 * x_t  # pylint: disable=unnecessary-lambda-assignment
  key = jax.random.PRNGKey(7)
  loss, aux = losses.denoising_mse(predict, schedule, jnp.asarray(x0), jnp.asarray(cond), key,
                                   prediction="v", weights=weights)
  k_t, k_noise, _, _ = jax.random.split(key, 4)
  t = np.asarray(jax.random.randint(k_t, (4,), 0, T, dtype=jnp.int32))
  noise = np.asarray(jax.random.normal(k_noise, x0.shape, jnp.float32), np.float64)
  a = np.sqrt(schedule.alphas_cumprod[t])[:, None, None, None]
  s = np.sqrt(1 - schedule.alphas_cumprod[t])[:, None, None, None]
  x_t = a * x0 + s * noise
  per_image = np.mean((0.5 * x_t - (a * noise - s * x0)) ** 2, axis=(1, 2, 3))
  np.testing.assert_allclose(float(loss), np.mean(weights[t] * per_image), rtol=1e-5)
  np.testing.assert_allclose(float(aux["mse"]), np.mean(per_image), rtol=1e-5)
