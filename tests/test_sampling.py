"""Samplers: equal to a float64 numpy loop and to diffusers' schedulers, right Gaussian moments,
batch/shard invariance, seeding, trajectory capture."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mrixai_jax import sharding
from mrixai_jax.diffusion import sampling
from mrixai_jax.diffusion import schedule as schedule_lib

T, BETA_START, BETA_END = 1000, 1e-4, 0.02
SIZE = 8


def _schedule():
  return schedule_lib.make_schedule(schedule_lib.linear_betas(T, BETA_START, BETA_END))


# ---------------------------------------------------------------- an analytic ε-model, in jax and numpy
def _eps_jax(params, x, t, cond):
  phase = jnp.cos(t.astype(jnp.float32) * params["freq"])[:, None, None, None]
  return jnp.tanh(params["a"] * x + params["b"] * jnp.sum(cond, -1, keepdims=True) * phase) + 0.1 * phase


def _eps_np(params, x, t, cond):
  phase = np.cos(float(t) * params["freq"])
  return np.tanh(params["a"] * x + params["b"] * np.sum(cond, -1, keepdims=True) * phase) + 0.1 * phase


_PARAMS = {"a": 0.9, "b": 0.7, "freq": 0.013}


def _cond(rng, batch):
  labels = rng.integers(0, 4, size=(batch, SIZE, SIZE))
  return (labels[..., None] == np.arange(1, 4)).astype(np.float32)


# ---------------------------------------------------------------- float64 numpy reference (formulas of
# Ho et al. eq. 6-7 / diffusers DDPMScheduler and Song et al. eq. 12 / diffusers DDIMScheduler)
def _reference_loop(kind, steps, eta, cond, null, w, x_init, noise, record, clip=1.0):
  betas = np.linspace(BETA_START, BETA_END, T, dtype=np.float64)
  abar = np.cumprod(1.0 - betas)
  if kind == "ddpm":
    timesteps, prevs = np.arange(T - 1, -1, -1), np.arange(T - 2, -2, -1)
  else:
    ratio = T // steps
    timesteps = np.arange(steps)[::-1] * ratio
    prevs = timesteps - ratio
  x = x_init.astype(np.float64)
  trace = {"xt": [], "eps": [], "x0": []}
  for i, (t, prev) in enumerate(zip(timesteps, prevs)):
    eps = _eps_np(_PARAMS, x, t, cond)
    if w != 1.0:
      eps_u = _eps_np(_PARAMS, x, t, np.broadcast_to(null, cond.shape))
      eps = eps_u + w * (eps - eps_u)
    a_t, a_prev = abar[t], (abar[prev] if prev >= 0 else 1.0)
    x0 = np.clip((x - np.sqrt(1 - a_t) * eps) / np.sqrt(a_t), -clip, clip)
    if i in record:
      trace["xt"].append(x)
      trace["eps"].append(np.abs(eps))
      trace["x0"].append(x0)
    if kind == "ddpm":
      beta_t = 1 - a_t / a_prev
      mean = np.sqrt(a_prev) * beta_t / (1 - a_t) * x0 + np.sqrt(1 - beta_t) * (1 - a_prev) / (1 - a_t) * x
      std = np.sqrt((1 - a_prev) / (1 - a_t) * beta_t) if t > 0 else 0.0
      x = mean + std * noise[i]
    else:
      sigma = eta * np.sqrt((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev))
      x = np.sqrt(a_prev) * x0 + np.sqrt(1 - a_prev - sigma**2) * eps + sigma * noise[i]
  return np.clip(x, -clip, clip), {k: np.stack(v, 1) for k, v in trace.items()}


def _noise_draws(keys, num_steps):
  shape = (SIZE, SIZE, 1)
  x_init = np.asarray(sampling.initial_noise(keys, shape), np.float64)
  noise = np.stack([np.asarray(sampling.step_noise(keys, i, shape), np.float64) for i in range(num_steps)])
  return x_init, noise


@pytest.mark.parametrize("kind,steps,eta,w", [
    ("ddpm", T, None, 1.0),
    ("ddim", 50, 0.0, 1.0),
    ("ddim", 20, 0.7, 2.5),
])
def test_loop_equals_float64_numpy_loop(kind, steps, eta, w):
  rng = np.random.default_rng(steps)
  schedule = _schedule()
  plan = sampling.ddpm_plan(schedule) if kind == "ddpm" else sampling.ddim_plan(schedule, steps, eta)
  record = (0, 3, plan.num_steps // 2, plan.num_steps - 1)
  null = rng.uniform(0, 1, size=(3,)).astype(np.float32)  # a "learned" null vector
  sampler = sampling.Sampler(_eps_jax, plan, guidance_scale=w, trajectory_indices=record)
  cond = _cond(rng, 3)
  keys = sampling.image_keys(jax.random.key(rng.integers(1 << 30)), 0, 3)
  out = sampler(_PARAMS, keys, jnp.asarray(cond), null)

  x_init, noise = _noise_draws(keys, plan.num_steps)
  ref, trace = _reference_loop(kind, steps, eta, cond, null, w, x_init, noise, record)
  np.testing.assert_allclose(np.asarray(out.samples), ref, rtol=0, atol=1e-5)
  np.testing.assert_allclose(np.asarray(out.trajectory_xt), trace["xt"], rtol=0, atol=1e-5)
  np.testing.assert_allclose(np.asarray(out.trajectory_eps_norm), trace["eps"], rtol=0, atol=1e-5)
  # x̂0 = (x_t - sqrt(1-ᾱ) ε̂) / sqrt(ᾱ) cancels: float32 rounding of x_t (|x_t| <= ~4, 2^-23 relative)
  # is amplified by 1/sqrt(ᾱ_t) (~156 at t = 999), so its tolerance scales with that factor.
  abar = schedule.alphas_cumprod[sampler.trajectory_timesteps]
  x0_tol = 1e-5 + 4 * 4 * 2.0**-23 / np.sqrt(abar)[None, :, None, None, None]
  assert np.all(np.abs(np.asarray(out.trajectory_x0) - trace["x0"]) <= x0_tol)
  assert np.asarray(out.finite).all()
  np.testing.assert_array_equal(sampler.trajectory_timesteps, plan.timesteps[list(record)])


def test_ddim_matches_diffusers_scheduler():
  torch = pytest.importorskip("torch")
  diffusers = pytest.importorskip("diffusers")
  steps, eta = 25, 0.5
  sched = diffusers.DDIMScheduler(num_train_timesteps=T, beta_start=BETA_START, beta_end=BETA_END,
                                  beta_schedule="linear", clip_sample=True, set_alpha_to_one=True,
                                  timestep_spacing="leading", steps_offset=0)
  sched.set_timesteps(steps)
  plan = sampling.ddim_plan(_schedule(), steps, eta)
  np.testing.assert_array_equal(plan.timesteps, sched.timesteps.numpy())

  rng = np.random.default_rng(5)
  cond = _cond(rng, 2)
  keys = sampling.image_keys(jax.random.key(11), 0, 2)
  out = sampling.Sampler(_eps_jax, plan)(_PARAMS, keys, jnp.asarray(cond))
  x_init, noise = _noise_draws(keys, steps)
  x = torch.tensor(x_init, dtype=torch.float32)
  for i, t in enumerate(sched.timesteps):
    eps = torch.tensor(_eps_np(_PARAMS, x.double().numpy(), int(t), cond), dtype=torch.float32)
    x = sched.step(eps, t, x, eta=eta, variance_noise=torch.tensor(noise[i], dtype=torch.float32)).prev_sample
  # diffusers computes in float32 torch; tolerance covers two float32 implementations.
  np.testing.assert_allclose(np.asarray(out.samples), x.clamp(-1, 1).numpy(), rtol=0, atol=1e-4)


def test_ddpm_plan_matches_diffusers_step():
  torch = pytest.importorskip("torch")
  diffusers = pytest.importorskip("diffusers")
  sched = diffusers.DDPMScheduler(num_train_timesteps=T, beta_start=BETA_START, beta_end=BETA_END,
                                  beta_schedule="linear", clip_sample=True, variance_type="fixed_small")
  sched.set_timesteps(T)
  schedule = _schedule()
  plan = sampling.ddpm_plan(schedule)
  np.testing.assert_array_equal(plan.timesteps, sched.timesteps.numpy())
  rng = np.random.default_rng(9)
  for i in range(0, T, 37):
    t = int(plan.timesteps[i])
    x, eps = rng.normal(size=(2, 1, 4, 4)), rng.normal(size=(2, 1, 4, 4))
    gen = torch.Generator().manual_seed(i)
    got = sched.step(torch.tensor(eps, dtype=torch.float32), t, torch.tensor(x, dtype=torch.float32),
                     generator=gen).prev_sample.numpy()
    z = torch.randn((2, 1, 4, 4), generator=torch.Generator().manual_seed(i)).numpy()
    a_t = schedule.alphas_cumprod[t]
    x0 = np.clip((x - np.sqrt(1 - a_t) * eps) / np.sqrt(a_t), -1, 1)
    ours = plan.x0_coef[i] * x0 + plan.xt_coef[i] * x + plan.eps_coef[i] * eps + plan.noise_std[i] * z
    np.testing.assert_allclose(ours, got, rtol=0, atol=2e-5, err_msg=f"t={t}")


def _moment_recursion(schedule, mu, s):
  """Exact mean/variance of the DDPM chain's output for N(mu, s²) data and its exact ε-model."""
  m, v = 0.0, 1.0
  for t in range(T - 1, -1, -1):
    a = schedule.alphas_cumprod[t]
    k = np.sqrt(1 - a) / (a * s * s + 1 - a)  # eps_hat = k (x - sqrt(a) mu)
    gain = schedule.posterior_mean_coef1[t] * (1 - np.sqrt(1 - a) * k) / np.sqrt(a) + schedule.posterior_mean_coef2[t]
    m = gain * m + schedule.posterior_mean_coef1[t] * np.sqrt(1 - a) * k * mu
    v = gain * gain * v + (schedule.posterior_variance[t] if t > 0 else 0.0)
  return m, v


def test_ddpm_with_exact_gaussian_eps_has_right_moments():
  mu, s = 0.25, 0.8  # data: every pixel i.i.d. N(mu, s²)

  def exact_eps(params, x, t, cond):
    del params, cond
    a = jnp.asarray(_schedule().alphas_cumprod, jnp.float32)[t][:, None, None, None]
    return jnp.sqrt(1 - a) * (x - jnp.sqrt(a) * mu) / (a * s * s + 1 - a)

  schedule = _schedule()
  sampler = sampling.Sampler(exact_eps, sampling.ddpm_plan(schedule), clip_sample=False)
  batch, size = 16, 32
  out = sampler({}, sampling.image_keys(jax.random.key(3), 0, batch), jnp.zeros((batch, size, size, 3)))
  x = np.asarray(out.samples, np.float64).ravel()
  n = x.size  # pixels are independent under this model
  mean_tol = 5 * s / np.sqrt(n)
  var_tol = 5 * s * s * np.sqrt(2.0 / (n - 1))
  assert abs(x.mean() - mu) < mean_tol, (x.mean(), mu, mean_tol)
  # fixed_small variance omits coef1² Var(x0 | x_t) per step, so the chain's exact output variance is
  # slightly below s²; compare with that (closed form) and bound its gap to the data variance.
  m_chain, v_chain = _moment_recursion(schedule, mu, s)
  assert abs(m_chain - mu) < 1e-4 and abs(v_chain / (s * s) - 1) < 0.02
  assert abs(x.var(ddof=1) - v_chain) < var_tol, (x.var(ddof=1), v_chain, var_tol)
  assert abs(x.var(ddof=1) - s * s) < var_tol + abs(v_chain - s * s)


def _small_ddim_sampler(eps_fn=_eps_jax, **kwargs):
  schedule = _schedule()
  return sampling.Sampler(eps_fn, sampling.ddim_plan(schedule, 10, eta=1.0),
                          trajectory_indices=(0, 5, -1), **kwargs)


def test_batched_equals_per_image():
  sampler = _small_ddim_sampler()
  cond = jnp.asarray(_cond(np.random.default_rng(1), 4))
  key = jax.random.key(7)
  batched = sampler(_PARAMS, sampling.image_keys(key, 0, 4), cond)
  for b in range(4):
    one = sampler(_PARAMS, sampling.image_keys(key, b, 1), cond[b:b + 1])
    for got, want in zip(one, batched):
      np.testing.assert_allclose(np.asarray(got)[0], np.asarray(want)[b], rtol=0, atol=1e-6)


def test_sharded_equals_unsharded():
  assert jax.device_count() == 4
  mesh = sharding.make_mesh()
  cond = jnp.asarray(_cond(np.random.default_rng(2), 8))
  keys = sampling.image_keys(jax.random.key(8), 0, 8)
  plain = _small_ddim_sampler(guidance_scale=1.5)(_PARAMS, keys, cond)
  sharded = _small_ddim_sampler(guidance_scale=1.5, mesh=mesh)(_PARAMS, keys, cond)
  assert len(sharded.samples.sharding.device_set) == 4
  for got, want in zip(sharded, plain):
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=0, atol=1e-6)
  with pytest.raises(ValueError, match="not divisible"):
    _small_ddim_sampler(mesh=mesh)(_PARAMS, keys[:6], cond[:6])


def test_same_seed_same_samples_different_seed_different():
  sampler = _small_ddim_sampler()
  cond = jnp.asarray(_cond(np.random.default_rng(3), 2))
  a = sampler(_PARAMS, sampling.image_keys(jax.random.key(1), 0, 2), cond).samples
  b = sampler(_PARAMS, sampling.image_keys(jax.random.key(1), 0, 2), cond).samples
  c = sampler(_PARAMS, sampling.image_keys(jax.random.key(2), 0, 2), cond).samples
  np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  assert np.abs(np.asarray(a) - np.asarray(c)).mean() > 0.05


def test_non_finite_images_are_flagged():
  def exploding(params, x, t, cond):
    del params, t
    return jnp.where(cond[..., :1].sum((1, 2, 3), keepdims=True) > 0, jnp.nan, x)

  schedule = _schedule()
  cond = np.zeros((2, SIZE, SIZE, 3), np.float32)
  cond[1, 0, 0, 0] = 1.0
  out = sampling.Sampler(exploding, sampling.ddim_plan(schedule, 5))(
      {}, sampling.image_keys(jax.random.key(0), 0, 2), jnp.asarray(cond))
  np.testing.assert_array_equal(np.asarray(out.finite), [True, False])


def test_step_indices():
  assert sampling.rescale_step_indices((0, 10, 49, -1), 50, 1000) == (0, 204, 999, 999)
  assert sampling.rescale_step_indices((0, 10, -1), 50, 50) == (0, 10, 49)
  assert sampling.normalize_step_indices((5, 0, 5, -1), 10) == (0, 5, 9)
  with pytest.raises(ValueError, match="index 10 is outside"):
    sampling.normalize_step_indices((10,), 10)
  with pytest.raises(ValueError, match="num_steps"):
    sampling.ddim_plan(_schedule(), 0)


def test_bound_params_equal_params_as_arguments():
  """`Sampler.bind(params)` (weights compiled in as constants, as generate.py samples) gives the
  samples and trajectories of `sampler(params, ...)` with a real (tiny) UNet, sharded over the 4
  test devices."""
  from mrixai_jax.models import unet  # pylint: disable=g-import-not-at-top
  model = unet.UNet(in_channels=4, out_channels=1, block_out_channels=(8, 16), norm_num_groups=4, norm_eps=1e-5,
                    down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"),
                    layers_per_block=1, attention_head_dim=8)
  cond = jnp.asarray(_cond(np.random.default_rng(4), 4))
  shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((4, SIZE, SIZE, 1)), jnp.zeros((4,), jnp.int32),
                          cond)
  rng = np.random.default_rng(5)  # random weights of every parameter (biases and norms included)
  params = jax.tree.map(lambda p: jnp.asarray(rng.normal(0, 0.2, p.shape), jnp.float32), shapes["params"])
  sampler = _small_ddim_sampler(mesh=sharding.make_mesh(), eps_fn=unet.model_fn(model))
  keys = sampling.image_keys(jax.random.key(9), 0, 4)
  as_arguments = sampler(params, keys, cond)
  bound = sampler.bind(params)(keys, cond)
  assert len(bound.samples.sharding.device_set) == 4
  assert np.abs(np.asarray(as_arguments.samples)).max() > 0.1
  for got, want in zip(bound, as_arguments):
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=0, atol=1e-4)
