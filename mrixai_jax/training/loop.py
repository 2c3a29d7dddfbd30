"""The one training loop, shared by the diffusion model and the prototype heads.

A task describes *what* to train as a `Task`:
  name               log lines ("diffusion", "heads/ppnet")
  train_config       ConfigDict with at least `batch_size, num_steps, seed, checkpoint_every,
                     keep_checkpoints, log_every` (`num_steps = -1`: `num_epochs` epochs); the diffusion
                     model's (configs/default.py `train`) also drives the default phase and the EMA
  config_section     where `train_config` lives in the config ("train", "heads.train"): error messages
  data               dict name -> numeric numpy array `[N, ...]`; by default the loop batches it
                     (BatchIterator, epoch shuffles from `seed`) and shards the batch axis over all devices
  init_params(key, *init_args) -> float32 params pytree (`init_args`: jit arguments, e.g. pretrained weights)
  loss_fn(params, batch, key, step) -> (scalar loss, dict of scalar metrics); traced under jit and
                     `value_and_grad` w.r.t. params; `batch` holds this step's rows, `key` is
                     `fold_in(state.rng, step)`, `step` the int32 step index
  phases             consecutive `Phase`s (default: one "train" phase, AdamW of `train_config`): each its
                     own optimizer state, fresh at the phase's start, and the parameter groups it trains
  hooks              `fn(step, state, inputs, should_stop) -> state | None` before every step and once at
                     the end (the heads' feature-cache switch and push); a returned state is checkpointed
  actions            `Action(every, fn(step, state))` host callbacks (e.g. a sample grid), run after the
                     checkpoint of that step
  make_inputs        `(batch_sharding) -> batches` with `next`, `get_state`, `set_state`, `close` (default:
                     BatchIterator over `data`)
  checkpoint_subdir, log_subdir   under WORKDIR: Orbax checkpoints and TensorBoard logs

The loop owns *how*: a 1-D device mesh (batch sharded, state replicated), one jit-compiled step per
phase with the state donated, the EMA (when `train_config.ema_decay` exists; warmed up as diffusers'
EMAModel), Orbax checkpoints (state + data position) with automatic resume from the latest one,
clu metric writers (TensorBoard + log lines), progress lines with steps/s and ETA, and the stops of
`interrupts`: a non-finite loss, gradient or parameter stops the run (`NonFiniteError` naming the
step) before anything of that step is saved, so the last checkpoint stays the last good one;
SIGTERM/SIGINT checkpoint the last finished step and raise `Interrupted` (exit code 143 / 130 from
the entry points).
"""

import dataclasses
import logging as py_logging
import math
import os
from typing import Any, Callable, Mapping, Optional, Sequence

import jax
import numpy as np
import optax
from absl import logging

from mrixai_jax import progress
from mrixai_jax import sharding
from mrixai_jax import workdir as workdir_lib
from mrixai_jax.data.pipeline import BatchIterator
from mrixai_jax.training import checkpoint as checkpoint_lib
from mrixai_jax.training import interrupts
from mrixai_jax.training.interrupts import Interrupted, NonFiniteError  # noqa: F401  (what loop.run raises)
from mrixai_jax.training import metric_window
from mrixai_jax.training import state as state_lib

DEFAULT_PHASE = "train"


@dataclasses.dataclass(frozen=True)
class Phase:
  """Steps `[previous phase's end, end)`: `optimizer` updates the top-level parameter groups in
  `trainable` (None: all); the other groups get no gradient. `learning_rate`: logged when given."""

  name: str
  end: int
  optimizer: optax.GradientTransformation
  trainable: Optional[frozenset] = None
  learning_rate: Optional[optax.Schedule] = None


@dataclasses.dataclass(frozen=True)
class Action:
  """Runs `fn(step, state)` on every process after each step divisible by `every` (<= 0: never)."""

  every: int
  fn: Callable[[int, state_lib.TrainState], None]


@dataclasses.dataclass
class Task:
  """A training task; see the module docstring."""

  name: str
  train_config: Any
  data: Mapping[str, np.ndarray]
  init_params: Callable[..., Any]
  loss_fn: Callable[[Any, dict, jax.Array, jax.Array], tuple]
  config_section: str = "train"
  phases: Sequence[Phase] = ()
  hooks: Sequence[Callable] = ()
  actions: Sequence[Action] = ()
  make_inputs: Optional[Callable] = None
  init_args: tuple = ()
  extras: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  line_metrics: Sequence[tuple] = ()  # (label, metric, format) shown after the loss in progress lines
  checkpoint_subdir: str = checkpoint_lib.DIFFUSION_SUBDIR
  log_subdir: str = ""  # default logs/<name>
  prefetch: int = 2


def default_phases(train_config, num_steps: int) -> tuple:
  """One phase over all steps: AdamW with warmup + schedule and clipping (`state.make_optimizer`)."""
  return (Phase(DEFAULT_PHASE, num_steps, state_lib.make_optimizer(train_config, num_steps),
                learning_rate=state_lib.learning_rate_schedule(train_config, num_steps)),)


def num_examples(task: Task) -> int:
  return len(next(iter(task.data.values())))


def resolve_phases(task: Task) -> tuple:
  """`task.phases` (or the default one) for the run's step count; the last phase must end there."""
  num_steps = state_lib.resolve_num_steps(task.train_config, num_examples(task), task.config_section)
  phases = tuple(task.phases) or default_phases(task.train_config, num_steps)
  if phases[-1].end != num_steps:
    raise ValueError(f"{task.name}: the last phase ends at step {phases[-1].end}, not at num_steps = {num_steps}")
  return phases


def phase_at(phases: Sequence[Phase], step: int) -> Phase:
  """The phase that trains step `step` (the first whose end lies beyond it)."""
  return next(phase for phase in phases if step < phase.end)


def make_train_step(task: Task, phase: Phase, mesh):
  """`step(state, batch) -> (state, metrics)` of `phase`, jit-compiled with `state` donated and
  replicated, batch sharded."""
  decay = task.train_config.get("ema_decay")

  def step(state: state_lib.TrainState, batch: dict):
    key = jax.random.fold_in(state.rng, state.step)

    def loss_of(params):
      if phase.trainable is not None:
        params = {k: v if k in phase.trainable else jax.lax.stop_gradient(v) for k, v in params.items()}
      return task.loss_fn(params, batch, key, state.step)

    (loss, metrics), grads = jax.value_and_grad(loss_of, has_aux=True)(state.params)
    updates, opt_state = phase.optimizer.update(grads, state.opt_state[phase.name], state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = dict(metrics, loss=loss, grad_norm=optax.tree.norm(grads),
                   finite=interrupts.all_finite(loss, grads, params))
    if phase.learning_rate is not None:
      metrics["learning_rate"] = phase.learning_rate(state.step)
    ema = state.ema_params
    if ema is not None:
      ema = state_lib.ema_update(ema, params, state_lib.ema_decay(state.step, float(decay)))
    return state.replace(step=state.step + 1, params=params, ema_params=ema,
                         opt_state=dict(state.opt_state, **{phase.name: opt_state})), metrics

  rep, batch = sharding.replicated(mesh), sharding.batch_sharding(mesh)
  return jax.jit(step, in_shardings=(rep, batch), out_shardings=(rep, rep), donate_argnums=(0,))


def init_state(task: Task, phases: Sequence[Phase], mesh) -> state_lib.TrainState:
  """Step-0 state from `train_config.seed` (one optimizer state per phase), replicated over `mesh`."""
  init_key, rng = jax.random.split(jax.random.PRNGKey(int(task.train_config.seed)))
  with_ema = task.train_config.get("ema_decay") is not None

  def create(init_key, rng, *init_args):
    params = task.init_params(init_key, *init_args)
    return state_lib.create(params, {p.name: p.optimizer.init(params) for p in phases}, rng, with_ema,
                            dict(task.extras))

  init = jax.jit(create, out_shardings=sharding.replicated(mesh)).lower(init_key, rng, *task.init_args)
  # Init runs once; on CPU, skipping LLVM optimisation of its many small RNG kernels cuts compile time ~3x.
  options = {"xla_backend_optimization_level": 0} if jax.default_backend() == "cpu" else None
  return init.compile(compiler_options=options)(init_key, rng, *task.init_args)


def _progress_line(task: Task, window: metric_window.MetricWindow, step: int, num_steps: int, tag: str) -> tuple:
  """`(scalars incl. steps_per_sec, human-readable line)` for the window ending at `step`."""
  means, rate, eta = window.close(step)
  shown = "".join(f"  {label} {means.get(key, math.nan):{fmt}}" for label, key, fmt in task.line_metrics)
  line = f"step {step}/{num_steps}{tag}  loss {means.get('loss', math.nan):.4f}{shown}  {rate:.2f} steps/s  ETA {eta}"
  return dict(means, steps_per_sec=rate), line


class _DropOrbaxInfo:
  """Filter for the "absl" logger: Orbax logs every save step by step at INFO; keep its warnings and errors."""

  def filter(self, record) -> bool:
    return record.levelno >= py_logging.WARNING or "orbax" not in record.pathname


def _quiet_orbax() -> None:
  absl_logger = py_logging.getLogger("absl")
  if not any(isinstance(f, _DropOrbaxInfo) for f in absl_logger.filters):
    absl_logger.addFilter(_DropOrbaxInfo())


def _host_metrics(metrics: dict) -> dict:
  return {k: float(v) for k, v in jax.device_get(metrics).items()}


def _default_inputs(task: Task):
  return lambda batch_sharding: BatchIterator(dict(task.data), int(task.train_config.batch_size),
                                              seed=int(task.train_config.seed), sharding=batch_sharding,
                                              prefetch=task.prefetch)


def run(task: Task, workdir: str, mesh=None, stop_at: Optional[int] = None) -> state_lib.TrainState:
  """Trains `task` to its step count, resuming from the latest checkpoint in `WORKDIR/<checkpoint_subdir>`.

  `mesh`: default all devices. `stop_at`: leave after that step (checkpointed) as if the run ended
  there (tests, time boxes). Returns the final state (replicated arrays).
  """
  from clu import metric_writers  # imports TensorFlow: keep it out of model/sampling import paths

  _quiet_orbax()
  t, name = task.train_config, task.name
  phases = resolve_phases(task)
  num_steps = phases[-1].end
  if int(t.num_steps) == -1:
    logging.info("%s: %s.num_steps = -1 -> %d epochs of %d steps (%d examples, batch %d) = %d steps", name,
                 task.config_section, int(t.num_epochs), num_steps // int(t.num_epochs), num_examples(task),
                 int(t.batch_size), num_steps)
  mesh = sharding.make_mesh() if mesh is None else mesh
  sharding.check_batch_divisible(int(t.batch_size), mesh, f"{name} {task.config_section}.batch_size")
  state = init_state(task, phases, mesh)
  inputs = (task.make_inputs or _default_inputs(task))(sharding.batch_sharding(mesh))
  checkpoints = checkpoint_lib.Checkpointer(os.path.join(workdir, task.checkpoint_subdir), int(t.keep_checkpoints))
  latest, state, position = checkpoints.restore_latest(state)
  if latest is not None:
    inputs.set_state(position)
    logging.info("%s: resumed from step %d (%s)", name, latest, checkpoints.directory)
  log_dir = os.path.join(workdir, task.log_subdir or os.path.join(workdir_lib.LOGS_SUBDIR, name))
  writer = metric_writers.create_default_writer(log_dir, just_logging=jax.process_index() > 0, asynchronous=False)
  train_steps = {}  # phase name -> compiled step, built when the phase first runs
  first = step = int(state.step)
  window = metric_window.MetricWindow(step, num_steps)
  throttle = progress.Throttle()
  last_saved = latest
  hint = f"Lower the {task.config_section} learning rate(s) or check the data."

  def save():
    nonlocal last_saved
    checkpoints.save(step, state, inputs.get_state())
    last_saved = step

  with interrupts.StopSignals() as stop:
    try:
      while True:
        changed = False
        for hook in task.hooks:
          new_state = hook(step, state, inputs, lambda: stop.received is not None)
          if new_state is not None:
            state, changed = new_state, True
        ending = step >= num_steps or (stop_at is not None and step >= stop_at)
        due = step > first and (step % int(t.checkpoint_every) == 0 or ending)
        if last_saved != step and (changed or due):
          save()
        if step > first:
          for action in task.actions:
            if action.every > 0 and step % action.every == 0:
              action.fn(step, state)
        if ending:
          break
        stop.raise_if_received(name, step, None if last_saved == step else save, checkpoints.directory)
        phase = phase_at(phases, step)
        if phase.name not in train_steps:
          train_steps[phase.name] = make_train_step(task, phase, mesh)
        state, metrics = train_steps[phase.name](state, next(inputs))
        step += 1
        metrics = interrupts.check_finite(_host_metrics(metrics), name, step, last_saved, checkpoints.directory, hint)
        window.add(metrics)
        if step % int(t.log_every) == 0 or step == num_steps:
          tag = f" [{phase.name}]" if len(phases) > 1 else ""
          scalars, line = _progress_line(task, window, step, num_steps, tag)
          writer.write_scalars(step, scalars)
          logging.log(throttle.level(step == num_steps), "%s: %s", name, line)
    finally:
      writer.flush()
      writer.close()
      inputs.close()
      checkpoints.close()
  return state
