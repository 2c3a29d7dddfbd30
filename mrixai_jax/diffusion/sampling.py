"""DDPM ancestral and DDIM sampling as one jit-compiled `lax.scan` over the step sequence.

Model contract: `eps_fn(params, x_t [B,H,W,C] float32, t [B] int32, cond [B,H,W,C_cond] float32)
-> eps [B,H,W,C]`; `params` is any pytree, passed through `jit` as an argument (never baked in
as a constant), so analytic test models and the UNet share the same code path.

Every step is the same fused linear update (constants precomputed in float64 per step):
  x̂0 = predict_x0_from_eps(x_t, ε̂)   (clipped to ±clip_range when clip_sample)
  x_prev = c_x0·x̂0 + c_xt·x_t + c_eps·ε̂ + σ·z
DDPM (Ho et al., diffusers DDPMScheduler, variance "fixed_small", all T steps):
  c_x0, c_xt = the posterior mean coefficients of q(x_{t-1} | x_t, x0), c_eps = 0,
  σ = sqrt(posterior variance), 0 at t = 0.
DDIM (Song et al., diffusers DDIMScheduler with "leading" spacing): timesteps (S-1..0)·(T//S),
  previous timestep t - T//S, ᾱ_prev = 1 past the end when set_alpha_to_one (else ᾱ_0),
  c_x0 = sqrt(ᾱ_prev), c_xt = 0, σ = η·sqrt((1-ᾱ_prev)/(1-ᾱ_t)·(1-ᾱ_t/ᾱ_prev)),
  c_eps = sqrt(1 - ᾱ_prev - σ²).

Classifier-free guidance with scale w: ε̂ = ε_u + w·(ε_c − ε_u), ε_u from `null_cond` (zeros, or a
learned `[C_cond]` vector) in place of the mask; both branches run as one doubled batch; w = 1 runs
the conditional model alone.

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

from mrixai_jax.diffusion.schedule import Schedule, predict_x0_from_eps
from mrixai_jax.training import sharding

EpsFn = Callable  # (params, x_t [B,H,W,C], t [B] int32, cond [B,H,W,C_cond]) -> eps [B,H,W,C]


@dataclasses.dataclass(frozen=True)
class StepPlan:
  """A sampler's step sequence and its per-step update constants (numpy `[S]`, float64)."""

  kind: str  # "ddpm" | "ddim"
  timesteps: np.ndarray  # int32 [S], descending
  x0_coef: np.ndarray
  xt_coef: np.ndarray
  eps_coef: np.ndarray
  noise_std: np.ndarray

  @property
  def num_steps(self) -> int:
    return int(self.timesteps.shape[0])

  @property
  def stochastic(self) -> bool:
    return bool(np.any(self.noise_std > 0))


def ddpm_plan(schedule: Schedule) -> StepPlan:
  """Ancestral sampling over all T timesteps with the "fixed_small" (posterior) variance."""
  t = np.arange(schedule.num_timesteps - 1, -1, -1)
  return StepPlan(
      kind="ddpm", timesteps=t.astype(np.int32),
      x0_coef=schedule.posterior_mean_coef1[t], xt_coef=schedule.posterior_mean_coef2[t],
      eps_coef=np.zeros(t.shape), noise_std=np.where(t > 0, np.sqrt(schedule.posterior_variance[t]), 0.0))


def ddim_plan(schedule: Schedule, num_steps: int, eta: float = 0.0, set_alpha_to_one: bool = True) -> StepPlan:
  """DDIM with diffusers' "leading" spacing: timesteps (S-1, ..., 0) * (T // S)."""
  total = schedule.num_timesteps
  if not 1 <= num_steps <= total:
    raise ValueError(f"DDIM needs 1 <= num_steps <= {total} (diffusion.num_timesteps), got {num_steps}")
  if eta < 0:
    raise ValueError(f"DDIM eta must be >= 0, got {eta}")
  ratio = total // num_steps
  t = np.arange(num_steps)[::-1] * ratio
  prev = t - ratio
  final = 1.0 if set_alpha_to_one else schedule.alphas_cumprod[0]
  abar = schedule.alphas_cumprod[t]
  abar_prev = np.where(prev >= 0, schedule.alphas_cumprod[np.maximum(prev, 0)], final)
  sigma = eta * np.sqrt((1.0 - abar_prev) / (1.0 - abar) * (1.0 - abar / abar_prev))
  return StepPlan(
      kind="ddim", timesteps=t.astype(np.int32), x0_coef=np.sqrt(abar_prev), xt_coef=np.zeros(t.shape),
      eps_coef=np.sqrt(1.0 - abar_prev - sigma**2), noise_std=sigma)


def plan_from_config(schedule: Schedule, sample_config) -> StepPlan:
  """`sample.sampler` ddpm (all T steps) or ddim (`num_steps`, `eta`, `set_alpha_to_one`)."""
  s = sample_config
  if s.sampler == "ddpm":
    return ddpm_plan(schedule)
  if s.sampler == "ddim":
    return ddim_plan(schedule, s.num_steps, s.eta, s.set_alpha_to_one)
  raise ValueError(f"sample.sampler must be 'ddpm' or 'ddim', got {s.sampler!r}")


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


def guided_eps(eps_fn: EpsFn, params, x, t, cond, null_cond, guidance_scale: float):
  """Classifier-free guidance ε̂ = ε_u + w·(ε_c − ε_u); w = 1 is the plain conditional model.

  `null_cond` broadcasts against `cond` (zeros, or a learned `[C_cond]` vector); both branches
  run as one model call on the doubled batch.
  """
  if guidance_scale == 1.0:
    return eps_fn(params, x, t, cond)
  null = jnp.broadcast_to(null_cond, cond.shape).astype(cond.dtype)
  eps = eps_fn(params, jnp.concatenate([x, x]), jnp.concatenate([t, t]), jnp.concatenate([cond, null]))
  eps_cond, eps_uncond = jnp.split(eps, 2)
  return eps_uncond + guidance_scale * (eps_cond - eps_uncond)


class SampleOutput(NamedTuple):
  """Samples and trajectories of one batch; K = number of recorded steps."""

  samples: jax.Array  # [B, H, W, C] float32 x_0, clipped to ±clip_range when clip_sample
  finite: jax.Array  # [B] bool: the raw final state and every recorded map are finite
  trajectory_xt: jax.Array  # [B, K, H, W, C] the state entering each recorded step
  trajectory_eps_norm: jax.Array  # [B, K, H, W, C] |ε̂| (guided) at that step
  trajectory_x0: jax.Array  # [B, K, H, W, C] x̂0 at that step (after clipping)


class Sampler:
  """`sampler(params, keys [B], cond [B,H,W,C_cond], null_cond=0.) -> SampleOutput` (jit-compiled).

  With `mesh`, the batch axis of keys/cond/outputs is sharded over the mesh's 'data' axis and
  params are replicated; B must divide evenly.
  """

  def __init__(self, eps_fn: EpsFn, schedule: Schedule, plan: StepPlan, *, image_channels: int = 1,
               clip_sample: bool = True, clip_range: float = 1.0, guidance_scale: float = 1.0,
               trajectory_indices: Sequence[int] = (), mesh=None):
    self.plan = plan
    self.trajectory_indices = normalize_step_indices(trajectory_indices, plan.num_steps)
    self.mesh = mesh
    self._eps_fn = eps_fn
    self._schedule = schedule
    self._channels = image_channels
    self._clip = clip_range if clip_sample else None
    self._guidance = float(guidance_scale)
    num_slots = len(self.trajectory_indices)
    slot = np.full(plan.num_steps, num_slots, np.int32)
    slot[list(self.trajectory_indices)] = np.arange(num_slots, dtype=np.int32)
    self._xs = (np.arange(plan.num_steps, dtype=np.int32), plan.timesteps.astype(np.int32), slot,
                *(a.astype(np.float32) for a in (plan.x0_coef, plan.xt_coef, plan.eps_coef, plan.noise_std)))
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

    def step(carry, xs):
      x, buffers = carry
      i, t_scalar, slot, c_x0, c_xt, c_eps, sigma = xs
      t = jnp.full((b,), t_scalar, jnp.int32)
      eps = guided_eps(self._eps_fn, params, x, t, cond, null_cond, self._guidance)
      x0 = predict_x0_from_eps(self._schedule, x, t, eps)
      if self._clip is not None:
        x0 = jnp.clip(x0, -self._clip, self._clip)
      x_prev = c_x0 * x0 + c_xt * x + c_eps * eps
      if self.plan.stochastic:
        x_prev = x_prev + sigma * step_noise(keys, i, shape)
      buffers = tuple(jax.lax.dynamic_update_index_in_dim(buf, v, slot, 0)
                      for buf, v in zip(buffers, (x, jnp.abs(eps), x0)))
      return (x_prev, buffers), None

    (x, buffers), _ = jax.lax.scan(step, (initial_noise(keys, shape), buffers), self._xs)
    xt, eps_norm, x0 = (jnp.moveaxis(buf[:num_slots], 0, 1) for buf in buffers)
    finite = jnp.all(jnp.isfinite(x).reshape(b, -1), axis=1)
    for traj in (xt, eps_norm, x0):
      finite &= jnp.all(jnp.isfinite(traj).reshape(b, -1), axis=1)
    samples = x if self._clip is None else jnp.clip(x, -self._clip, self._clip)
    return SampleOutput(samples, finite, xt, eps_norm, x0)


def sampler_from_config(eps_fn: EpsFn, schedule: Schedule, sample_config, *, plan: Optional[StepPlan] = None,
                        image_channels: int = 1, mesh=None) -> Sampler:
  """A `Sampler` configured by the config's `sample` section; `trajectory_steps` are rescaled from
  `trajectory_num_steps` to the plan's step count (see `rescale_step_indices`)."""
  s = sample_config
  plan = plan_from_config(schedule, s) if plan is None else plan
  indices = rescale_step_indices(s.trajectory_steps, s.trajectory_num_steps, plan.num_steps)
  return Sampler(eps_fn, schedule, plan, image_channels=image_channels, clip_sample=s.clip_sample,
                 clip_range=s.clip_range, guidance_scale=s.guidance_scale, trajectory_indices=indices, mesh=mesh)
