"""The one training loop, shared by the diffusion model and the prototype heads.

A task describes *what* to train as a `Task`:
  name               log lines and the TensorBoard directory `WORKDIR/logs/<name>`
  train_config       ConfigDict with `batch_size, num_steps, seed, learning_rate, lr_schedule, warmup_steps,
                     weight_decay, adam_b1, adam_b2, adam_eps, grad_clip_norm, ema_decay, checkpoint_every,
                     keep_checkpoints, log_every` (see configs/default.py `train`)
  data               dict name -> numeric numpy array `[N, ...]`; the loop batches it (BatchIterator, epoch
                     shuffles from `seed`) and shards the batch axis over all devices
  init_params(key)   -> float32 params pytree
  loss_fn(params, batch, key) -> (scalar loss, dict of scalar metrics); traced under jit and
                     `value_and_grad` w.r.t. params; `batch` holds `data`'s arrays for this step's rows,
                     `key` is the step's PRNG key `fold_in(state.rng, step)`
  checkpoint_subdir  checkpoints go to `WORKDIR/<checkpoint_subdir>`
  actions            `Action(every, fn(step, state))` host callbacks (e.g. a sample grid), run after the
                     checkpoint of that step

The loop owns *how*: a 1-D device mesh (batch sharded, state replicated), one jit-compiled step with
the state donated, AdamW with warmup + cosine/constant schedule and clipping, the EMA (`ema_decay`,
warmed up as diffusers' EMAModel), Orbax checkpoints (state + data position) with automatic resume
from the latest one in WORKDIR, clu metric writers (TensorBoard + log lines), progress lines with
steps/s and ETA, and the stops of `interrupts`: a non-finite loss, gradient or parameter stops the run
(`NonFiniteError` naming the step) before anything of that step is saved, so the last checkpoint
stays the last good one; SIGTERM/SIGINT checkpoint the step in flight and raise `Interrupted`
(exit code 143 / 130 from `train.py`).
"""

import dataclasses
import logging as py_logging
import math
import os
from typing import Any, Callable, Mapping, Sequence

import jax
import numpy as np
import optax
from absl import logging

from mrixai_jax import progress
from mrixai_jax import sharding
from mrixai_jax.data.pipeline import BatchIterator
from mrixai_jax.training import checkpoint as checkpoint_lib
from mrixai_jax.training import interrupts
from mrixai_jax.training.interrupts import Interrupted, NonFiniteError  # noqa: F401  (what loop.run raises)
from mrixai_jax.training import metric_window
from mrixai_jax.training import state as state_lib


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
  init_params: Callable[[jax.Array], Any]
  loss_fn: Callable[[Any, dict, jax.Array], tuple]
  checkpoint_subdir: str = checkpoint_lib.DIFFUSION_SUBDIR
  actions: Sequence[Action] = ()
  prefetch: int = 2


def make_train_step(task: Task, optimizer: optax.GradientTransformation, lr_schedule, mesh):
  """`step(state, batch) -> (state, metrics)`, jit-compiled with `state` donated and replicated, batch sharded."""
  decay = float(task.train_config.ema_decay)

  def step(state: state_lib.TrainState, batch: dict):
    key = jax.random.fold_in(state.rng, state.step)
    (loss, metrics), grads = jax.value_and_grad(task.loss_fn, has_aux=True)(state.params, batch, key)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = dict(metrics, loss=loss, grad_norm=optax.tree.norm(grads), learning_rate=lr_schedule(state.step),
                   finite=interrupts.all_finite(loss, grads, params))
    new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state,
                              ema_params=state_lib.ema_update(state.ema_params, params, state_lib.ema_decay(state.step, decay)))
    return new_state, metrics

  rep, batch = sharding.replicated(mesh), sharding.batch_sharding(mesh)
  return jax.jit(step, in_shardings=(rep, batch), out_shardings=(rep, rep), donate_argnums=(0,))


def init_state(task: Task, optimizer: optax.GradientTransformation, mesh) -> state_lib.TrainState:
  """Step-0 state from `train_config.seed`, replicated over `mesh`."""
  init_key, rng = jax.random.split(jax.random.PRNGKey(task.train_config.seed))

  def create(init_key, rng):
    return state_lib.create(task.init_params(init_key), optimizer, rng)

  init = jax.jit(create, out_shardings=sharding.replicated(mesh)).lower(init_key, rng)
  # Init runs once; on CPU, skipping LLVM optimisation of its many small RNG kernels cuts compile time ~3x.
  options = {"xla_backend_optimization_level": 0} if jax.default_backend() == "cpu" else None
  return init.compile(compiler_options=options)(init_key, rng)


def _progress_line(window: metric_window.MetricWindow, step: int, num_steps: int) -> tuple:
  """`(scalars incl. steps_per_sec, human-readable line)` for the window ending at `step`."""
  means, rate, eta = window.close(step)
  line = f"step {step}/{num_steps}  loss {means.get('loss', math.nan):.4f}  {rate:.2f} steps/s  ETA {eta}"
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


def run(task: Task, workdir: str, mesh=None) -> state_lib.TrainState:
  """Trains `task` to `train_config.num_steps` (-1: `num_epochs` epochs, `state.resolve_num_steps`),
  resuming from the latest checkpoint in `workdir`.

  `mesh`: default all devices. Returns the final state (replicated arrays).
  """
  from clu import metric_writers  # imports TensorFlow: keep it out of model/sampling import paths

  _quiet_orbax()
  t = task.train_config
  num_examples = len(next(iter(task.data.values())))
  num_steps = state_lib.resolve_num_steps(t, num_examples)
  if int(t.num_steps) == -1:
    logging.info("%s: train.num_steps = -1 -> %d epochs of %d steps (%d examples, batch %d) = %d steps", task.name,
                 int(t.num_epochs), num_steps // int(t.num_epochs), num_examples, int(t.batch_size), num_steps)
  mesh = sharding.make_mesh() if mesh is None else mesh
  sharding.check_batch_divisible(int(t.batch_size), mesh, f"{task.name} train batch_size")
  lr_schedule = state_lib.learning_rate_schedule(t, num_steps)
  optimizer = state_lib.make_optimizer(t, num_steps)
  state = init_state(task, optimizer, mesh)
  batches = BatchIterator(dict(task.data), int(t.batch_size), seed=int(t.seed),
                          sharding=sharding.batch_sharding(mesh), prefetch=task.prefetch)
  checkpoints = checkpoint_lib.Checkpointer(os.path.join(workdir, task.checkpoint_subdir), int(t.keep_checkpoints))
  latest, state, position = checkpoints.restore_latest(state)
  if latest is not None:
    batches.set_state(position)
    logging.info("%s: resumed from step %d (%s)", task.name, latest, checkpoints.directory)
  writer = metric_writers.create_default_writer(os.path.join(workdir, "logs", task.name),
                                                just_logging=jax.process_index() > 0, asynchronous=False)
  train_step = make_train_step(task, optimizer, lr_schedule, mesh)
  step = int(state.step)
  window = metric_window.MetricWindow(step, num_steps)
  throttle = progress.Throttle()
  last_saved = latest
  with interrupts.StopSignals() as stop:
    try:
      while step < num_steps:
        state, metrics = train_step(state, next(batches))
        step += 1
        metrics = interrupts.check_finite(_host_metrics(metrics), task.name, step, last_saved, checkpoints.directory,
                                          "Lower train.learning_rate or check the data.")
        window.add(metrics)
        if step % int(t.log_every) == 0 or step == num_steps:
          scalars, line = _progress_line(window, step, num_steps)
          writer.write_scalars(step, scalars)
          logging.log(throttle.level(step == num_steps), "%s: %s", task.name, line)
        if step % int(t.checkpoint_every) == 0 or step == num_steps:
          checkpoints.save(step, state, batches.get_state())
          last_saved = step
        for action in task.actions:
          if action.every > 0 and step % action.every == 0:
            action.fn(step, state)
        if step < num_steps:
          save = None if last_saved == step else lambda: checkpoints.save(step, state, batches.get_state())
          stop.raise_if_received(task.name, step, save, checkpoints.directory)
    finally:
      writer.flush()
      writer.close()
      batches.close()
      checkpoints.close()
  return state
