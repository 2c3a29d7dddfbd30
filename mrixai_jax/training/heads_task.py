"""Training one prototype head (`train.py --config.task=heads`): warm → joint → push → last layer.

Phases follow the originals (prototypes.md §2.3, §4.5) in steps: `heads.train.warm_steps` with only
the add-on, prototypes (and ProtoPool's assignment logits) trained; then joint training (plus the
backbone when `lr_backbone > 0`) until `num_steps − last_layer_steps`; then the push (projection
with provenance, `explain.push`); then the last layer alone. Each phase has its own fresh Adam
(torch's separate optimizers) with per-group learning rates and coupled L2 weight decay
(`add_decayed_weights` before `scale_by_adam`, as torch's `Adam(weight_decay=...)`); frozen groups
get exactly zero updates and no gradient computation. ProtoPool's Gumbel multiplier follows
`gumbel_scale(step / steps_per_epoch)`. While the backbone is fixed, its features of the training
split are computed once and the steps and the push start from them (`feature_cache.TrainInputs`:
up to `heads.train.feature_cache_mb` of host memory).

Outputs in `WORKDIR/heads/<kind>/`: `checkpoints/<step>` (Orbax: params, optimizer states, step,
RNG, data position; a run resumes from the latest), `push.npz` / `push.json` (provenance),
`prototype_gallery.png`, `metrics.jsonl` (logged means).

Stops (`interrupts`): SIGTERM/SIGINT checkpoint the last finished step (at the push step, after
the push) and raise `Interrupted` (exit 143 / 130 from `train.py`); a non-finite loss, gradient or
parameter raises `NonFiniteError` naming the step before that step is saved.
"""

import functools
import json
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import logging

from mrixai_jax import progress
from mrixai_jax import sharding
from mrixai_jax.explain import push
from mrixai_jax.models import proto_heads as ph
from mrixai_jax.models import prototypes as pm
from mrixai_jax.models import tissue_cells
from mrixai_jax.pretrained import lpips_vgg
from mrixai_jax.training import checkpoint as checkpoint_lib
from mrixai_jax.training import feature_cache
from mrixai_jax.training import interrupts
from mrixai_jax.training import metric_window

PHASES = ("warm", "joint", "last_layer")
DECAYED_GROUPS = ("backbone", "add_on")  # coupled L2 on these (the originals' weight_decay)


def head_dir(workdir: str, kind: str) -> str:
  return os.path.join(workdir, "heads", kind)


def phase_bounds(train) -> tuple:
  """`(warm_end, push_step, num_steps)`: warm is [0, warm_end), joint [warm_end, push_step), the
  push happens before step `push_step`, the last layer trains in [push_step, num_steps)."""
  num, warm, last = int(train.num_steps), int(train.warm_steps), int(train.last_layer_steps)
  if num <= 0 or warm < 0 or last < 0 or warm + last > num:
    raise ValueError(f"heads.train: need num_steps > 0 and 0 <= warm_steps + last_layer_steps <= num_steps; "
                     f"got {num}, {warm}, {last}")
  return warm, num - last, num


def phase_at(step: int, bounds: tuple) -> str:
  warm_end, push_step, _ = bounds
  return PHASES[0] if step < warm_end else PHASES[1] if step < push_step else PHASES[2]


def learning_rates(train, phase: str) -> dict:
  """Per parameter group learning rate of `phase` (0: frozen)."""
  rates = dict.fromkeys(("backbone", "add_on", "prototypes", "presence", "last_layer"), 0.0)
  if phase in ("warm", "joint"):
    rates.update(add_on=train.lr_add_on, prototypes=train.lr_prototypes, presence=train.lr_prototypes)
  if phase == "joint":
    rates["backbone"] = train.lr_backbone
  if phase == "last_layer":
    rates["last_layer"] = train.lr_last_layer
  return {group: float(lr) for group, lr in rates.items()}


def make_optimizer(train, phase: str, steps_per_epoch: int) -> optax.GradientTransformation:
  """Adam with coupled L2 per parameter group; the joint phase's lr drops ×`joint_decay_gamma`
  every `joint_decay_epochs` epochs (StepLR); frozen groups get zero updates."""
  transforms = {}
  for group, lr in learning_rates(train, phase).items():
    if lr <= 0:
      transforms[group] = optax.set_to_zero()
      continue
    schedule = optax.constant_schedule(lr)
    if phase == "joint":
      schedule = optax.exponential_decay(lr, int(train.joint_decay_epochs) * steps_per_epoch,
                                         float(train.joint_decay_gamma), staircase=True)
    decay = float(train.weight_decay) if group in DECAYED_GROUPS else 0.0
    transforms[group] = optax.chain(optax.add_decayed_weights(decay),
                                    optax.scale_by_adam(train.adam_b1, train.adam_b2, train.adam_eps),
                                    optax.scale_by_learning_rate(schedule))
  return optax.multi_transform(transforms, lambda params: {k: k for k in params})


def _trainable(train, phase: str) -> set:
  return {group for group, lr in learning_rates(train, phase).items() if lr > 0}


def backbone_fixed_until(train, bounds: tuple, step: int) -> int:
  """The first step at or after `step` at which the backbone trains (`num_steps` if none): its
  output is fixed over [step, that step)."""
  warm_end, push_step, num = bounds
  for phase, start, end in zip(PHASES, (0, warm_end, push_step), (warm_end, push_step, num)):
    if end > max(start, step) and learning_rates(train, phase)["backbone"] > 0:
      return max(start, step)
  return num


def make_train_step(model: pm.ProtoModel, heads, phase: str, class_weight, steps_per_epoch: int, mesh):
  """Jitted `step(state, batch) -> (state, metrics)` for one phase (state replicated, batch sharded)."""
  train, pool = heads.train, heads.protopool
  optimizer = make_optimizer(train, phase, steps_per_epoch)
  trainable = _trainable(train, phase)
  class_weight = jnp.asarray(class_weight)

  def step(state, batch):
    key = jax.random.fold_in(state["rng"], state["step"])
    scale = ph.gumbel_scale(state["step"] / steps_per_epoch, pool.gumbel_epochs, pool.gumbel_start, pool.gumbel_end)

    def loss_fn(params):
      params = {k: v if k in trainable else jax.lax.stop_gradient(v) for k, v in params.items()}
      if "trunk" in batch:  # cached backbone features (feature_cache.TrainInputs)
        z = pm.add_on_features(params, batch["trunk"])
      else:
        z = pm.features(model, params, batch["image"])
      return pm.cell_loss(model, params, z, batch["labels"], class_weight, heads.loss, scale, key)

    (loss, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(state["params"])
    updates, opt_state = optimizer.update(grads, state["opt"][phase], state["params"])
    params = optax.apply_updates(state["params"], updates)
    new_state = dict(state, step=state["step"] + 1, params=params, opt=dict(state["opt"], **{phase: opt_state}))
    return new_state, dict(metrics, loss=loss, gumbel_scale=scale, finite=interrupts.all_finite(loss, grads, params))

  rep, batch = sharding.replicated(mesh), sharding.batch_sharding(mesh)
  return jax.jit(step, in_shardings=(rep, batch), out_shardings=(rep, rep), donate_argnums=(0,))


def _state_fn(model: pm.ProtoModel, heads, steps_per_epoch: int):
  """`create(seed, backbone) -> state`: params, one optimizer state per phase, step, RNG key and
  the `pushed` flag (backbone None: random backbone init)."""

  def create(seed, backbone):
    init_key, rng = jax.random.split(jax.random.PRNGKey(seed))
    params = pm.init_params(model, init_key, backbone)
    opt = {phase: make_optimizer(heads.train, phase, steps_per_epoch).init(params) for phase in PHASES}
    return {"step": jnp.zeros((), jnp.int32), "params": params, "opt": opt, "rng": rng,
            "pushed": jnp.zeros((), jnp.int32)}

  return create


def init_state(model: pm.ProtoModel, heads, steps_per_epoch: int, pretrained: bool = True) -> dict:
  """Step-0 state (see `_state_fn`), with the ImageNet trunk when `pretrained`."""
  backbone = lpips_vgg.pretrained_backbone(model) if pretrained else None
  seed = jnp.asarray(int(heads.train.seed), jnp.uint32)
  lowered = jax.jit(_state_fn(model, heads, steps_per_epoch)).lower(seed, backbone)
  # Init runs once; on CPU, skipping LLVM optimisation of its many small RNG kernels cuts compile time.
  options = {"xla_backend_optimization_level": 0} if jax.default_backend() == "cpu" else None
  return lowered.compile(compiler_options=options)(seed, backbone)


def training_class_weights(model: pm.ProtoModel, labels, chunk: int = 256):
  """Inverse-frequency tissue weights `[T]` and valid-cell counts `[T]` over the whole split."""
  targets = jax.jit(lambda lab: pm.cell_targets(model, lab))
  index, valid = zip(*(targets(labels[i:i + chunk]) for i in range(0, len(labels), chunk)))
  return tissue_cells.class_weights(np.concatenate(index), np.concatenate(valid), model.num_classes)


class _Metrics:
  """Progress lines (means since the last line, rate, ETA) and the same means in a JSON-lines log."""

  def __init__(self, path: str, name: str, first_step: int, num_steps: int):
    self._path, self._name, self._num = path, name, num_steps
    self._window = metric_window.MetricWindow(first_step, num_steps)
    self._throttle = progress.Throttle()

  def add(self, metrics: dict):
    self._window.add(metrics)

  def report(self, step: int, phase: str):
    means, rate, eta = self._window.close(step)
    logging.log(self._throttle.level(step == self._num),
                "%s: step %d/%d [%s] loss %.4f  CE %.4f  cell acc %.3f  %.2f steps/s  ETA %s", self._name,
                step, self._num, phase, means.get("loss", math.nan), means.get("cross_entropy", math.nan),
                means.get("cell_accuracy", math.nan), rate, eta)
    if jax.process_index() == 0:
      with open(self._path, "a", encoding="utf-8") as f:
        f.write(json.dumps(dict(means, step=step, phase=phase, steps_per_sec=rate)) + "\n")


def _do_push(model, state, heads, data: dict, out_dir: str, mesh, trunk=None) -> dict:
  params = jax.device_get(state["params"])
  pushed, record = push.push_prototypes(model, params, data, int(heads.train.push_batch_size), trunk)
  if jax.process_index() == 0:
    push.save_record(out_dir, record)
    push.save_gallery(os.path.join(out_dir, "prototype_gallery.png"), record, data["image"],
                      tissue_names=TISSUE_NAMES)
  return dict(state, params=jax.device_put(pushed, sharding.replicated(mesh)),
              pushed=jnp.ones((), jnp.int32))


TISSUE_NAMES = {1: "fat", 2: "FGT", 3: "vessel"}  # the label map of ARCHITECTURE.md


def train(config, workdir: str, data: dict = None, pretrained: bool = True, mesh=None, stop_at=None):
  """Trains `config.heads.kind` on the tissue cells of the training split; returns
  `(model, params, record)`. Resumes from the latest checkpoint in `WORKDIR/heads/<kind>`.

  stop_at: leave after that step as if interrupted, after saving a checkpoint (tests, time boxes);
  then `record` is None when the push has not happened yet.

  data: `image [N, S, S, 1]`, `labels [N, S, S]`, `patient_id [N]`, `slice_index [N]`; default
  the train split of `config.data` (built under `workdir` if needed).
  """
  heads, train_cfg = config.heads, config.heads.train
  if data is None:
    from mrixai_jax.data import pipeline  # pylint: disable=g-import-not-at-top
    data = pipeline.load_split(config.data, "train", workdir)
  model = pm.build_model(heads, int(data["image"].shape[1]))
  out_dir = head_dir(workdir, heads.kind)
  bounds = phase_bounds(train_cfg)
  mesh = sharding.make_mesh() if mesh is None else mesh
  sharding.check_batch_divisible(int(train_cfg.batch_size), mesh, "heads.train.batch_size")
  class_weight, counts = training_class_weights(model, data["labels"])
  logging.info("heads/%s: valid training cells per tissue %s, class weights %s", heads.kind,
               dict(zip(model.tissue_classes, counts.tolist())), np.round(class_weight, 3).tolist())
  if (counts == 0).any():
    missing = [t for t, c in zip(model.tissue_classes, counts) if c == 0]
    raise ValueError(f"heads: no training cell is labelled with tissue {missing}; lower heads.purity_per_class "
                     f"or heads.purity_threshold (cells of {model.cell_size} px)")
  name = f"heads/{heads.kind}"
  fixed_until = functools.partial(backbone_fixed_until, train_cfg, bounds)
  batches = feature_cache.TrainInputs(model, data, train_cfg, fixed_until, bounds[1], sharding.batch_sharding(mesh), name)
  steps_per_epoch = batches.batches_per_epoch
  state = jax.device_put(init_state(model, heads, steps_per_epoch, pretrained), sharding.replicated(mesh))
  checkpoints = checkpoint_lib.Checkpointer(os.path.join(out_dir, "checkpoints"), int(train_cfg.keep_checkpoints))
  latest, state, position = checkpoints.restore_latest(state)
  if latest is not None:
    batches.set_state(position)
    logging.info("heads/%s: resumed from step %d", heads.kind, latest)
  steps = {phase: make_train_step(model, heads, phase, class_weight, steps_per_epoch, mesh) for phase in PHASES}
  step, last_saved = int(state["step"]), latest
  log = _Metrics(os.path.join(out_dir, "metrics.jsonl"), name, step, bounds[2])

  def save():
    nonlocal last_saved
    checkpoints.save(step, state, batches.get_state())
    last_saved = step

  with interrupts.StopSignals() as stop:
    try:
      while True:
        batches.prepare(step, state, lambda: stop.received is not None)
        if step == bounds[1] and not int(state["pushed"]):
          state = _do_push(model, state, heads, data, out_dir, mesh, batches.trunk)
          save()
        if step >= bounds[2] or (stop_at is not None and step >= stop_at):
          break
        stop.raise_if_received(name, step, None if last_saved == step else save, checkpoints.directory)
        phase = phase_at(step, bounds)
        state, metrics = steps[phase](state, next(batches))
        step += 1
        metrics = interrupts.check_finite(jax.device_get(metrics), name, step, last_saved, checkpoints.directory,
                                          "Lower the heads.train learning rates.")
        log.add({k: float(v) for k, v in metrics.items()})
        if step % int(train_cfg.log_every) == 0 or step == bounds[2]:
          log.report(step, phase)
        stopping = stop_at is not None and step == stop_at
        if step != bounds[1] and (step % int(train_cfg.checkpoint_every) == 0 or step == bounds[2] or stopping):
          save()
    finally:
      batches.close()
      checkpoints.close()
  record = push.load_record(out_dir) if int(state["pushed"]) else None
  return model, jax.device_get(state["params"]), record


def load(config, workdir: str, kind: str, image_size: int):
  """`(model, params, record)` of a trained head from `WORKDIR/heads/<kind>` (latest checkpoint)."""
  heads = config.heads.copy_and_resolve_references()
  with heads.unlocked():
    heads.kind = kind
  model = pm.build_model(heads, image_size)
  directory = os.path.join(head_dir(workdir, kind), "checkpoints")
  checkpoints = checkpoint_lib.Checkpointer(directory, int(heads.train.keep_checkpoints))
  try:
    like = jax.eval_shape(_state_fn(model, heads, 1), jnp.uint32(0), None)
    latest, state, _ = checkpoints.restore_latest(like)
    if latest is None:
      raise FileNotFoundError(f"{directory} holds no checkpoint (train first: python train.py "
                              f"--config.task=heads --config.heads.kind={kind})")
  finally:
    checkpoints.close()
  return model, jax.device_get(state["params"]), push.load_record(head_dir(workdir, kind))
