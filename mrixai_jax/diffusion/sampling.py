"""DDPM ancestral, DDIM and (SDE-)DPM-Solver++(2M) sampling as one jit-compiled `lax.scan` over the steps.

Model contract: `model_fn(params, x_t [B,H,W,C] float32, t [B] int32, cond [B,H,W,C_cond] float32)
-> output [B,H,W,C]`, the network's raw output: ε, v or x0 by the sampler's `prediction`
(`parameterization.to_x0_eps` turns it into x̂0 and ε̂ with the step's α_t = sqrt(ᾱ_t),
σ_t = sqrt(1 − ᾱ_t)). `params` is any pytree, passed through `jit` as an argument, so analytic
test models and the UNet share the same code path (`Sampler.bind` compiles them in on CPU).

Every step is the same fused linear update (constants precomputed in float64 per step):
  x̂0, ε̂ = to_x0_eps(output)   (x̂0 clipped to ±clip_range when clip_sample)
  x_prev = c_x0·x̂0 + c_xt·x_t + c_eps·ε̂ + c_x0prev·x̂0_prev + σ·z     (x̂0_prev: the previous step's x̂0)
DDPM (Ho et al., diffusers DDPMScheduler, variance "fixed_small", all T steps):
  c_x0, c_xt = the posterior mean coefficients of q(x_{t-1} | x_t, x0), σ = sqrt(posterior
  variance), 0 at t = 0.
DDIM (Song et al., diffusers DDIMScheduler): timesteps by `timestep_spacing` (below), previous
  timestep t − T//S as diffusers, ᾱ_prev = 1 past the end when set_alpha_to_one (else ᾱ_0),
  c_x0 = sqrt(ᾱ_prev), σ = η·sqrt((1-ᾱ_prev)/(1-ᾱ_t)·(1-ᾱ_t/ᾱ_prev)), c_eps = sqrt(1 - ᾱ_prev - σ²).
DPM-Solver++(2M) (Lu et al. 2022; diffusers DPMSolverMultistepScheduler with
  algorithm_type="dpmsolver++", solver_order=2, solver_type="midpoint", final_sigmas_type="zero"):
  λ = log(α/σ); from step i to i+1, h = λ_{i+1} − λ_i, k = α_{i+1}(e^{−h} − 1), c_xt = σ_{i+1}/σ_i;
  first order at the first and the last step (c_x0 = −k), otherwise with r = (λ_i − λ_{i−1})/h:
  c_x0 = −k(1 + 1/(2r)), c_x0prev = k/(2r). The last step goes to σ = 0, so it returns x̂0.
  With zero terminal SNR, ᾱ_{T−1} is raised to 2^-24 (as diffusers) so λ is finite.
SDE-DPM-Solver++(2M) (algorithm_type="sde-dpmsolver++", midpoint): with A = α_{i+1}(1 − e^{−2h}),
  c_xt = σ_{i+1}/σ_i·e^{−h}, c_x0 = A(1 + 1/(2r)), c_x0prev = −A/(2r) (A at first order) and fresh
  noise σ·z with σ = σ_{i+1}·sqrt(1 − e^{−2h}) at every step.
Karras sigmas (`karras_sigmas`, diffusers' use_karras_sigmas, for both DPM samplers): the noise
  levels s = sqrt((1−ᾱ)/ᾱ) run from s(T−1) to s(0) evenly in s^(1/ρ), ρ = 7 (Karras et al. 2022),
  which puts more steps at low noise; each level's timestep is its log-s interpolation in the
  training schedule, rounded, and the step uses α = 1/sqrt(s²+1), σ = s·α of the level itself.
  The first level is s(T−1) itself, so its timestep is T−1. (diffusers interpolates it too: with
  zero terminal SNR, s(t) is not monotone past t ≈ T−5 once ᾱ_{T−1} is raised to 2^-24, and its
  float32 rounding lands the first level on t = 995 of 1000; the levels are the same.)
Timestep spacing (diffusers' `timestep_spacing`, S steps of T): "leading" (S−1..0)·(T//S) for DDIM,
  (S..1)·(T//(S+1)) for DPM-Solver++; "trailing" round(T, T − T/S, ..., T/S) − 1, which starts at
  t = T − 1 (needed with zero terminal SNR: pure noise is only the truth there); "linspace"
  round(linspace(0, T−1, S)) reversed for DDIM, linspace(0, T−1, S+1) without 0 for DPM-Solver++.

Classifier-free guidance with scale w: out = out_u + w·(out_c − out_u) (on the raw output, as
diffusers' pipelines), out_u from `null_cond` (zeros, or a learned `[C_cond]` vector) in place of
the mask; both branches run as one doubled batch; w = 1 runs the conditional model alone.

Randomness (documented so any image can be reproduced alone): image b of a run gets the key
`k_b = fold_in(key, b)` (b = its global index, so results do not depend on batch size, batch
position or sharding); `init_key, step_key = split(k_b)`; x_T = normal(init_key, [H,W,C]); the
noise z of step i (i = 0 is the first, noisiest step) is normal(fold_in(step_key, i), [H,W,C]).

Trajectories: at K chosen step indices the scan writes x_t (the step's input), |ε̂| and x̂0 into
preallocated `[K+1, B, ...]` buffers (slot K is a scratch slot for the unrecorded steps), so
memory is O(K), never O(S).
"""

import dataclasses
import functools
from typing import Callable, NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from mrixai_jax import sharding
from mrixai_jax.diffusion import parameterization
from mrixai_jax.diffusion.names import DPM_SAMPLERS, SAMPLERS, TIMESTEP_SPACINGS
from mrixai_jax.diffusion.schedule import Schedule

ModelFn = Callable  # (params, x_t [B,H,W,C], t [B] int32, cond [B,H,W,C_cond]) -> output [B,H,W,C]
DPM_MIN_ALPHA_CUMPROD = 2.0**-24  # diffusers: ᾱ of the terminal step at zero SNR, so λ stays finite
KARRAS_RHO = 7.0  # Karras et al. 2022 (and diffusers): the exponent of the noise-level spacing


@dataclasses.dataclass(frozen=True)
class StepPlan:
  """A sampler's step sequence and its per-step constants (numpy `[S]`, float64)."""

  kind: str  # one of SAMPLERS
  timesteps: np.ndarray  # int32 [S], descending
  alpha: np.ndarray  # sqrt(ᾱ_t): turns the model output into x̂0 and ε̂
  sigma: np.ndarray  # sqrt(1 - ᾱ_t)
  x0_coef: np.ndarray
  xt_coef: np.ndarray
  eps_coef: np.ndarray
  prev_x0_coef: np.ndarray
  noise_std: np.ndarray

  @property
  def num_steps(self) -> int:
    return int(self.timesteps.shape[0])

  @property
  def stochastic(self) -> bool:
    return bool(np.any(self.noise_std > 0))

  @property
  def multistep(self) -> bool:
    return bool(np.any(self.prev_x0_coef != 0))


def _plan(kind, timesteps, abar, **coefs) -> StepPlan:
  zeros = np.zeros(len(timesteps))
  full = {name: np.asarray(coefs.get(name, zeros), np.float64)
          for name in ("x0_coef", "xt_coef", "eps_coef", "prev_x0_coef", "noise_std")}
  return StepPlan(kind=kind, timesteps=np.asarray(timesteps).astype(np.int32), alpha=np.sqrt(abar),
                  sigma=np.sqrt(1.0 - abar), **full)


def ddpm_plan(schedule: Schedule) -> StepPlan:
  """Ancestral sampling over all T timesteps with the "fixed_small" (posterior) variance."""
  t = np.arange(schedule.num_timesteps - 1, -1, -1)
  return _plan("ddpm", t, schedule.alphas_cumprod[t],
               x0_coef=schedule.posterior_mean_coef1[t], xt_coef=schedule.posterior_mean_coef2[t],
               noise_std=np.where(t > 0, np.sqrt(schedule.posterior_variance[t]), 0.0))


def _check_steps(name: str, num_steps: int, total: int) -> None:
  if not 1 <= num_steps <= total:
    raise ValueError(f"{name} needs 1 <= num_steps <= {total} (diffusion.num_timesteps), got {num_steps}")


def spaced_timesteps(spacing: str, num_steps: int, total: int, kind: str = "ddim") -> np.ndarray:
  """Descending timesteps `[S]` int64 of diffusers' `timestep_spacing` for DDIM or DPM-Solver++."""
  if spacing == "trailing":
    return np.round(np.arange(total, 0, -total / num_steps)).astype(np.int64) - 1
  if spacing == "leading":
    if kind == "ddim":
      return np.arange(num_steps)[::-1].astype(np.int64) * (total // num_steps)
    return (np.arange(num_steps + 1) * (total // (num_steps + 1)))[::-1][:-1].astype(np.int64)
  if spacing == "linspace":
    if kind == "ddim":
      return np.linspace(0, total - 1, num_steps).round()[::-1].astype(np.int64)
    return np.linspace(0, total - 1, num_steps + 1).round()[::-1][:-1].astype(np.int64)
  raise ValueError(f"sample.timestep_spacing must be one of {TIMESTEP_SPACINGS}, got {spacing!r}")


def ddim_plan(schedule: Schedule, num_steps: int, eta: float = 0.0, set_alpha_to_one: bool = True,
              spacing: str = "leading") -> StepPlan:
  """DDIM over `spaced_timesteps(spacing)`; the previous timestep is t − T//S (as diffusers)."""
  total = schedule.num_timesteps
  _check_steps("DDIM", num_steps, total)
  if eta < 0:
    raise ValueError(f"DDIM eta must be >= 0, got {eta}")
  t = spaced_timesteps(spacing, num_steps, total, "ddim")
  prev = t - total // num_steps
  final = 1.0 if set_alpha_to_one else schedule.alphas_cumprod[0]
  abar = schedule.alphas_cumprod[t]
  abar_prev = np.where(prev >= 0, schedule.alphas_cumprod[np.maximum(prev, 0)], final)
  sigma = eta * np.sqrt((1.0 - abar_prev) / (1.0 - abar) * (1.0 - abar / abar_prev))
  return _plan("ddim", t, abar, x0_coef=np.sqrt(abar_prev), eps_coef=np.sqrt(1.0 - abar_prev - sigma**2),
               noise_std=sigma)


def _dpm_alphas_cumprod(schedule: Schedule) -> np.ndarray:
  """ᾱ `[T]` as diffusers' DPM scheduler sees it: ᾱ_{T−1} raised to 2^-24 (finite λ at zero SNR)."""
  abar = np.array(schedule.alphas_cumprod, np.float64)
  abar[-1] = max(abar[-1], DPM_MIN_ALPHA_CUMPROD)
  return abar


def karras_levels(alphas_cumprod: np.ndarray, num_steps: int) -> tuple:
  """Karras et al.'s noise levels for `num_steps` steps (see the module docstring).

  Returns `(timesteps [S] int64, ᾱ [S] float64)`: the rounded timestep given to the model and the
  ᾱ = 1/(s²+1) of each level.
  """
  log_levels = 0.5 * np.log((1.0 - alphas_cumprod) / alphas_cumprod)  # log s(t), t = 0..T-1
  hi, lo = np.exp(log_levels[-1] / KARRAS_RHO), np.exp(log_levels[0] / KARRAS_RHO)
  levels = (hi + np.linspace(0.0, 1.0, num_steps) * (lo - hi)) ** KARRAS_RHO
  log_s = np.log(levels)
  # The last t with log s(t) <= log s (at most T-2), then linear interpolation in log s (diffusers).
  low = np.minimum(np.cumsum(log_s[None, :] >= log_levels[:, None], axis=0).argmax(axis=0), len(log_levels) - 2)
  w = np.clip((log_levels[low] - log_s) / (log_levels[low] - log_levels[low + 1]), 0.0, 1.0)
  timesteps = np.round(low + w).astype(np.int64)
  timesteps[0] = len(log_levels) - 1  # the first level is s(T-1) (see the module docstring)
  return timesteps, 1.0 / (levels**2 + 1.0)


def dpmpp2m_plan(schedule: Schedule, num_steps: int, spacing: str = "leading", *, sde: bool = False,
                 karras_sigmas: bool = False) -> StepPlan:
  """DPM-Solver++(2M), deterministic or (`sde`) SDE-DPM-Solver++(2M), ending at σ = 0; timesteps
  by `spacing`, or Karras noise levels (`karras_sigmas`, which ignores `spacing`). See the module
  docstring."""
  total = schedule.num_timesteps
  _check_steps("DPM-Solver++", num_steps, total)
  abar_all = _dpm_alphas_cumprod(schedule)
  if karras_sigmas:
    t, abar = karras_levels(abar_all, num_steps)
  else:
    t = spaced_timesteps(spacing, num_steps, total, "dpmpp2m")
    abar = abar_all[t]
  alpha = np.append(np.sqrt(abar), 1.0)  # step S: σ = 0
  sigma = np.append(np.sqrt(1.0 - abar), 0.0)
  with np.errstate(divide="ignore"):
    lam = np.log(alpha) - np.log(sigma)  # +inf at the end
  h = lam[1:] - lam[:-1]
  half_over_r = np.zeros(num_steps)  # 0: first order, at the first step and into σ = 0 at the last
  half_over_r[1:-1] = 0.5 * h[1:-1] / (lam[1:-2] - lam[:-3])  # 1 / (2r), r = previous step's h / h
  kind = "dpmpp2m_sde" if sde else "dpmpp2m"
  if sde:
    a = -alpha[1:] * np.expm1(-2.0 * h)  # α_{i+1}(1 - e^{-2h}); α at the end
    return _plan(kind, t, abar, x0_coef=a * (1.0 + half_over_r), xt_coef=sigma[1:] / sigma[:-1] * np.exp(-h),
                 prev_x0_coef=-a * half_over_r, noise_std=sigma[1:] * np.sqrt(-np.expm1(-2.0 * h)))
  k = alpha[1:] * np.expm1(-h)  # -alpha at the end (e^{-inf} = 0)
  return _plan(kind, t, abar, x0_coef=-k * (1.0 + half_over_r), xt_coef=sigma[1:] / sigma[:-1],
               prev_x0_coef=k * half_over_r)


def plan_from_config(schedule: Schedule, sample_config) -> StepPlan:
  """`sample.sampler`: ddpm (all T steps), ddim (`num_steps`, `eta`, `set_alpha_to_one`,
  `timestep_spacing`), dpmpp2m or dpmpp2m_sde (`num_steps`, `timestep_spacing` or `karras_sigmas`)."""
  spacing = sample_config.get("timestep_spacing", "leading")
  if sample_config.sampler == "ddpm":
    return ddpm_plan(schedule)
  if sample_config.sampler == "ddim":
    return ddim_plan(schedule, sample_config.num_steps, sample_config.eta, sample_config.set_alpha_to_one, spacing)
  if sample_config.sampler in DPM_SAMPLERS:
    return dpmpp2m_plan(schedule, sample_config.num_steps, spacing, sde=sample_config.sampler == "dpmpp2m_sde",
                        karras_sigmas=bool(sample_config.get("karras_sigmas", False)))
  raise ValueError(f"sample.sampler must be one of {SAMPLERS}, got {sample_config.sampler!r}")


def rescale_step_indices(indices: Sequence[int], reference_steps: int, num_steps: int) -> tuple:
  """Maps step indices written for a `reference_steps`-step sequence onto a `num_steps` one.

  Index i goes to round(i · (num_steps - 1) / (reference_steps - 1)), so the first and last steps
  stay the first and last (e.g. config indices for DDIM-50 used with DDPM-1000); negative indices
  count from the end of the reference sequence.
  """
  indices = [int(i) + reference_steps if int(i) < 0 else int(i) for i in indices]
  if num_steps == reference_steps or reference_steps <= 1:
    return tuple(indices)
  scale = (num_steps - 1) / (reference_steps - 1)
  return tuple(int(round(i * scale)) for i in indices)


def normalize_step_indices(indices: Sequence[int], num_steps: int) -> tuple:
  """Sorted unique step indices in `[0, num_steps)`; negative ones count from the end."""
  out = set()
  for i in indices:
    j = int(i) + num_steps if int(i) < 0 else int(i)
    if not 0 <= j < num_steps:
      raise ValueError(f"sample.trajectory_steps: index {i} is outside the sampler's {num_steps} steps")
    out.add(j)
  return tuple(sorted(out))


def image_keys(key, start: int, count: int):
  """Per-image keys `[count]` for global image indices `start .. start+count-1`."""
  return jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.arange(start, start + count, dtype=jnp.uint32))


def initial_noise(keys, shape: Sequence[int]):
  """x_T `[B, *shape]` float32 drawn from each image's key (see the module docstring)."""
  return jax.vmap(lambda k: jax.random.normal(jax.random.split(k)[0], tuple(shape), jnp.float32))(keys)


def step_noise(keys, step, shape: Sequence[int]):
  """The noise z `[B, *shape]` of step index `step` (0 = first step) for each image's key."""
  def one(k):
    return jax.random.normal(jax.random.fold_in(jax.random.split(k)[1], step), tuple(shape), jnp.float32)
  return jax.vmap(one)(keys)


def guided_output(model_fn: ModelFn, params, x, t, cond, null_cond, guidance_scale: float):
  """Classifier-free guidance out_u + w·(out_c − out_u); w = 1 is the plain conditional model.

  `null_cond` broadcasts against `cond` (zeros, or a learned `[C_cond]` vector); both branches
  run as one model call on the doubled batch.
  """
  if guidance_scale == 1.0:
    return model_fn(params, x, t, cond)
  null = jnp.broadcast_to(null_cond, cond.shape).astype(cond.dtype)
  out = model_fn(params, jnp.concatenate([x, x]), jnp.concatenate([t, t]), jnp.concatenate([cond, null]))
  out_cond, out_uncond = jnp.split(out, 2)
  return out_uncond + guidance_scale * (out_cond - out_uncond)


class SampleOutput(NamedTuple):
  """Samples and trajectories of one batch; K = number of recorded steps."""

  samples: jax.Array  # [B, H, W, C] float32 x_0, clipped to ±clip_range when clip_sample
  finite: jax.Array  # [B] bool: the raw final state and every recorded map are finite
  trajectory_xt: jax.Array  # [B, K, H, W, C] the state entering each recorded step
  trajectory_eps_norm: jax.Array  # [B, K, H, W, C] |ε̂| (guided) at that step
  trajectory_x0: jax.Array  # [B, K, H, W, C] x̂0 at that step (after clipping)


class Sampler:
  """`sampler(params, keys [B], cond [B,H,W,C_cond], null_cond=0.) -> SampleOutput` (jit-compiled).

  `prediction`: what `model_fn` outputs (eps | v | x0). With `mesh`, the batch axis of
  keys/cond/outputs is sharded over the mesh's 'data' axis and params are replicated; B must
  divide evenly.
  """

  def __init__(self, model_fn: ModelFn, plan: StepPlan, *, prediction: str = "eps", image_channels: int = 1,
               clip_sample: bool = True, clip_range: float = 1.0, guidance_scale: float = 1.0,
               trajectory_indices: Sequence[int] = (), mesh=None):
    parameterization.check_prediction(prediction)
    self.plan = plan
    self.trajectory_indices = normalize_step_indices(trajectory_indices, plan.num_steps)
    self.mesh = mesh
    self._model_fn = model_fn
    self._prediction = prediction
    self._channels = image_channels
    self._clip = clip_range if clip_sample else None
    self._guidance = float(guidance_scale)
    num_slots = len(self.trajectory_indices)
    slot = np.full(plan.num_steps, num_slots, np.int32)
    slot[list(self.trajectory_indices)] = np.arange(num_slots, dtype=np.int32)
    coefs = (plan.alpha, plan.sigma, plan.x0_coef, plan.xt_coef, plan.eps_coef, plan.prev_x0_coef, plan.noise_std)
    self._xs = (np.arange(plan.num_steps, dtype=np.int32), plan.timesteps.astype(np.int32), slot,
                *(a.astype(np.float32) for a in coefs))
    self._run = self._compile(self._sample, with_params=True)

  @property
  def trajectory_timesteps(self) -> np.ndarray:
    """Diffusion timestep t `[K]` of each recorded step."""
    return self.plan.timesteps[list(self.trajectory_indices)]

  def __call__(self, params, keys, cond, null_cond=0.0) -> SampleOutput:
    self._check_batch(cond)
    return self._run(params, keys, cond, jnp.asarray(null_cond, jnp.float32))

  def bind(self, params):
    """`(keys [B], cond, null_cond=0.) -> SampleOutput` for many batches from one set of weights
    (generate.py). On CPU the params are compiled in as constants: XLA:CPU then lays out the
    convolution weights once instead of at every step (DDIM-50 64² b8 on 2 host devices, params
    already replicated: 1070 -> 1029 ms; benchmarks/constant_weights.py); each `bind` compiles
    anew, and results equal `self(params, ...)` up to float32 rounding. Other backends (not
    measured there) keep the params as arguments."""
    if jax.default_backend() != "cpu":
      return functools.partial(self.__call__, params)
    run = self._compile(lambda keys, cond, null_cond: self._sample(params, keys, cond, null_cond), with_params=False)

    def sample(keys, cond, null_cond=0.0) -> SampleOutput:
      self._check_batch(cond)
      return run(keys, cond, jnp.asarray(null_cond, jnp.float32))

    return sample

  def _compile(self, fn, with_params: bool):
    """jax.jit of `fn([params,] keys, cond, null_cond)`; with a mesh, keys/cond/outputs sharded
    over the batch and params/null_cond replicated."""
    if self.mesh is None:
      return jax.jit(fn)
    batch, rep = sharding.batch_sharding(self.mesh), sharding.replicated(self.mesh)
    in_shardings = ((rep,) if with_params else ()) + (batch, batch, rep)
    return jax.jit(fn, in_shardings=in_shardings, out_shardings=batch)

  def _check_batch(self, cond) -> None:
    if self.mesh is not None:
      sharding.check_batch_divisible(int(cond.shape[0]), self.mesh, "sampling batch size")

  def _sample(self, params, keys, cond, null_cond) -> SampleOutput:
    b, h, w, _ = cond.shape
    shape = (h, w, self._channels)
    num_slots = len(self.trajectory_indices)
    buffers = tuple(jnp.zeros((num_slots + 1, b) + shape, jnp.float32) for _ in range(3))
    multistep = self.plan.multistep

    def step(carry, xs):
      x, prev_x0, buffers = carry
      i, t_scalar, slot, alpha, sigma, c_x0, c_xt, c_eps, c_prev, noise_std = xs
      t = jnp.full((b,), t_scalar, jnp.int32)
      output = guided_output(self._model_fn, params, x, t, cond, null_cond, self._guidance)
      x0, eps = parameterization.to_x0_eps(self._prediction, output.astype(jnp.float32), x, alpha, sigma)
      if self._clip is not None:
        x0 = jnp.clip(x0, -self._clip, self._clip)
      x_prev = c_x0 * x0 + c_xt * x + c_eps * eps
      if multistep:
        x_prev = x_prev + c_prev * prev_x0
      if self.plan.stochastic:
        x_prev = x_prev + noise_std * step_noise(keys, i, shape)
      buffers = tuple(jax.lax.dynamic_update_index_in_dim(buf, v, slot, 0)
                      for buf, v in zip(buffers, (x, jnp.abs(eps), x0)))
      return (x_prev, x0 if multistep else prev_x0, buffers), None

    x_init = initial_noise(keys, shape)
    (x, _, buffers), _ = jax.lax.scan(step, (x_init, jnp.zeros_like(x_init), buffers), self._xs)
    xt, eps_norm, x0 = (jnp.moveaxis(buf[:num_slots], 0, 1) for buf in buffers)
    finite = jnp.all(jnp.isfinite(x).reshape(b, -1), axis=1)
    for traj in (xt, eps_norm, x0):
      finite &= jnp.all(jnp.isfinite(traj).reshape(b, -1), axis=1)
    samples = x if self._clip is None else jnp.clip(x, -self._clip, self._clip)
    return SampleOutput(samples, finite, xt, eps_norm, x0)


def sampler_from_config(model_fn: ModelFn, schedule: Schedule, sample_config, *, prediction: str = "eps",
                        plan: Optional[StepPlan] = None, image_channels: int = 1, mesh=None) -> Sampler:
  """A `Sampler` configured by the config's `sample` section (`prediction`: the config's
  `diffusion.prediction`); `trajectory_steps` are rescaled from `trajectory_num_steps` to the
  plan's step count (see `rescale_step_indices`)."""
  plan = plan_from_config(schedule, sample_config) if plan is None else plan
  indices = rescale_step_indices(sample_config.trajectory_steps, sample_config.trajectory_num_steps, plan.num_steps)
  return Sampler(model_fn, plan, prediction=prediction, image_channels=image_channels,
                 clip_sample=sample_config.clip_sample, clip_range=sample_config.clip_range,
                 guidance_scale=sample_config.guidance_scale, trajectory_indices=indices, mesh=mesh)
