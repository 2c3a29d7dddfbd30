"""The prototype-head task for the training loop (`train.py --config.task=heads`): warm → joint →
push → last layer.

Phases follow the originals (prototypes.md §2.3, §4.5) in steps: `heads.train.warm_steps` with only
the add-on, prototypes (and ProtoPool's assignment logits) trained; then joint training (plus the
backbone when `lr_backbone > 0`) until `num_steps − last_layer_steps`; then the push (projection
with provenance, `explain.push`; a hook before the first last-layer step); then the last layer
alone. Each phase is a `loop.Phase` with its own fresh Adam (torch's separate optimizers), per-group
learning rates and coupled L2 weight decay (`add_decayed_weights` before `scale_by_adam`, as torch's
`Adam(weight_decay=...)`); frozen groups get exactly zero updates and no gradient computation.
ProtoPool's Gumbel multiplier follows `gumbel_scale(step / steps_per_epoch)`. While the backbone is
fixed, its features of the training split are computed once and the steps and the push start from
them (`feature_cache.TrainInputs`, switched by a hook: up to `heads.train.feature_cache_mb` of host memory).

Outputs in `WORKDIR/heads/<kind>/`: `checkpoints/<step>` (Orbax, see training/loop.py: a run resumes
from the latest), `logs/` (TensorBoard), `push.npz` / `push.json` (provenance), `prototype_gallery.png`.
Stops and resumption are the loop's (`interrupts`): at the push step the checkpoint follows the push.
"""

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging
import optax

from mrixai_jax import batched
from mrixai_jax import workdir as workdir_lib
from mrixai_jax.data import pipeline
from mrixai_jax.explain import push
from mrixai_jax.models import proto_heads as ph
from mrixai_jax.models import prototypes as pm
from mrixai_jax.models import tissue_cells
from mrixai_jax.pretrained import lpips_vgg
from mrixai_jax.training import checkpoint as checkpoint_lib
from mrixai_jax.training import feature_cache
from mrixai_jax.training import loop
from mrixai_jax.training import optimizer

PHASES = ("warm", "joint", "last_layer")
DECAYED_GROUPS = ("backbone", "add_on")  # coupled L2 on these (the originals' weight_decay)


def head_dir(workdir: str, kind: str, seed_index: int = 0) -> str:
  return os.path.join(workdir, workdir_lib.head_subdir(kind, seed_index))


def seeded_train_config(heads):
  """`heads.train` with `seed` = `heads.train.seed + heads.seed_index` (init and data order)."""
  train = heads.train.copy_and_resolve_references()
  with train.unlocked():
    train.seed = int(heads.train.seed) + int(heads.get("seed_index", 0))
  return train


def phase_bounds(train) -> tuple:
  """`(warm_end, push_step, num_steps)`: warm is [0, warm_end), joint [warm_end, push_step), the
  push happens before step `push_step`, the last layer trains in [push_step, num_steps)."""
  num, warm, last = int(train.num_steps), int(train.warm_steps), int(train.last_layer_steps)
  if num <= 0 or warm < 0 or last < 0 or warm + last > num:
    raise ValueError(f"heads.train: need num_steps > 0 and 0 <= warm_steps + last_layer_steps <= num_steps; "
                     f"got {num}, {warm}, {last}")
  return warm, num - last, num


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
  """Adam with coupled L2 per parameter group (`optimizer.adam`); the joint phase's lr drops
  ×`joint_decay_gamma` every `joint_decay_epochs` epochs (StepLR); frozen groups get zero updates."""
  groups = {}
  for group, lr in learning_rates(train, phase).items():
    rate = optax.constant_schedule(lr) if lr > 0 else 0.0
    if phase == "joint" and lr > 0:
      rate = optax.exponential_decay(lr, int(train.joint_decay_epochs) * steps_per_epoch,
                                     float(train.joint_decay_gamma), staircase=True)
    decay = float(train.weight_decay) if group in DECAYED_GROUPS else 0.0
    groups[group] = optimizer.Group(rate, decay, decoupled=False)
  return optimizer.adam(groups, train.adam_b1, train.adam_b2, train.adam_eps)


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


def training_class_weights(model: pm.ProtoModel, labels, chunk: int = 256):
  """Inverse-frequency tissue weights `[T]` and valid-cell counts `[T]` over the whole split."""
  targets = jax.jit(lambda lab: pm.cell_targets(model, lab))
  index, valid = batched.host_map(targets, (labels,), chunk, "class weights")
  return tissue_cells.class_weights(index, valid, model.num_classes)



def phases(train, steps_per_epoch: int) -> tuple:
  """The warm, joint and last-layer `loop.Phase`s of `heads.train` (an empty one is never run)."""
  return tuple(loop.Phase(name, end, make_optimizer(train, name, steps_per_epoch), frozenset(_trainable(train, name)))
               for name, end in zip(PHASES, phase_bounds(train)))


def _loss_fn(model: pm.ProtoModel, heads, class_weight, steps_per_epoch: int):
  """The tissue-cell loss (`pm.cell_loss`) of a batch of images or of cached trunk features."""
  pool, class_weight = heads.protopool, jnp.asarray(class_weight)

  def loss_fn(params, batch, key, step):
    scale = ph.gumbel_scale(step / steps_per_epoch, pool.gumbel_epochs, pool.gumbel_start, pool.gumbel_end)
    if "trunk" in batch:  # cached backbone features (feature_cache.TrainInputs)
      z = pm.add_on_features(params, batch["trunk"])
    else:
      z = pm.features(model, params, batch["image"])
    loss, metrics = pm.cell_loss(model, params, z, batch["labels"], class_weight, heads.loss, scale, key)
    return loss, dict(metrics, gumbel_scale=scale)

  return loss_fn


def _push_hook(model: pm.ProtoModel, heads, data: dict, out_dir: str, push_step: int):
  """Before step `push_step`: projects the prototypes (once; `extras["pushed"]` says it happened) and writes
  the provenance and gallery (process 0)."""

  def hook(step, state, inputs, should_stop):
    del should_stop
    if step != push_step or int(state.extras["pushed"]):
      return None
    pushed, record = push.push_prototypes(model, jax.device_get(state.params), data,
                                          int(heads.train.push_batch_size), inputs.trunk)
    if jax.process_index() == 0:
      push.save_record(out_dir, record)
      push.save_gallery(os.path.join(out_dir, "prototype_gallery.png"), record, data["image"],
                        tissue_names=TISSUE_NAMES)
    params = jax.device_put(pushed, jax.tree_util.tree_leaves(state.params)[0].sharding)
    return state.replace(params=params, extras=dict(state.extras, pushed=jnp.ones((), jnp.int32)))

  return hook


TISSUE_NAMES = {1: "fat", 2: "FGT", 3: "vessel"}  # the label map of ARCHITECTURE.md
CHECKPOINTS, LOGS = "checkpoints", "logs"  # under heads/<kind>/
LINE_METRICS = (("CE", "cross_entropy", ".4f"), ("cell acc", "cell_accuracy", ".3f"))


def _build(config, workdir: str, data=None, pretrained: bool = True) -> tuple:
  """`(task, model)` for `config.heads.kind`; see `build`."""
  heads, seed_index = config.heads, int(config.heads.get("seed_index", 0))
  train = seeded_train_config(heads)
  if data is None:
    data = pipeline.load_split(config.data, "train", workdir)
  model = pm.build_model(heads, int(data["image"].shape[1]))
  subdir = workdir_lib.head_subdir(heads.kind, seed_index)
  out_dir, name = os.path.join(workdir, subdir), subdir.replace(os.sep, "/")
  bounds = phase_bounds(train)
  class_weight, counts = training_class_weights(model, data["labels"])
  logging.debug("%s: valid training cells per tissue %s, class weights %s", name,
                dict(zip(model.tissue_classes, counts.tolist())), np.round(class_weight, 3).tolist())
  if (counts == 0).any():
    missing = [t for t, c in zip(model.tissue_classes, counts) if c == 0]
    raise ValueError(f"heads: no training cell is labelled with tissue {missing}; lower heads.purity_per_class "
                     f"or heads.purity_threshold (cells of {model.cell_size} px)")
  steps_per_epoch = pipeline.batches_per_epoch(len(data["labels"]), int(train.batch_size))
  fixed_until = functools.partial(backbone_fixed_until, train, bounds)

  def make_inputs(batch_sharding):
    return feature_cache.TrainInputs(model, data, train, fixed_until, bounds[1], batch_sharding, name)

  def prepare_inputs(step, state, inputs, should_stop):
    inputs.prepare(step, state, should_stop)

  task = loop.Task(
      name=name, train_config=train, config_section="heads.train", data=data,
      init_params=functools.partial(pm.init_params, model),
      loss_fn=_loss_fn(model, heads, class_weight, steps_per_epoch),
      phases=phases(train, steps_per_epoch), hooks=(prepare_inputs, _push_hook(model, heads, data, out_dir, bounds[1])),
      make_inputs=make_inputs, init_args=(lpips_vgg.pretrained_backbone(model) if pretrained else None,),
      extras={"pushed": jnp.zeros((), jnp.int32)}, line_metrics=LINE_METRICS,
      checkpoint_subdir=os.path.join(subdir, CHECKPOINTS), log_subdir=os.path.join(subdir, LOGS))
  return task, model


def build(config, workdir: str, data=None, pretrained: bool = True) -> loop.Task:
  """The `loop.Task` of `config.heads.kind` on the tissue cells of the training split.

  data: `image [N, S, S, 1]`, `labels [N, S, S]`, `patient_id [N]`, `slice_index [N]`; default the train
  split of `config.data` (built under `workdir` if needed). pretrained: the ImageNet trunk (else random).
  """
  return _build(config, workdir, data, pretrained)[0]


def train(config, workdir: str, data: dict = None, pretrained: bool = True, mesh=None, stop_at=None):
  """Trains the head with `loop.run` (resuming from `WORKDIR/heads/<kind>/checkpoints`); returns
  `(model, params, record)`, `record` None when `stop_at` left before the push."""
  task, model = _build(config, workdir, data, pretrained)
  state = loop.run(task, workdir, mesh, stop_at)
  out_dir = head_dir(workdir, config.heads.kind, int(config.heads.get("seed_index", 0)))
  record = push.load_record(out_dir) if int(state.extras["pushed"]) else None
  return model, jax.device_get(state.params), record


def load(config, workdir: str, kind: str, image_size: int, seed_index: int = 0):
  """`(model, params, record)` of a trained head from `WORKDIR/heads/<kind>[/seed<k>]` (latest checkpoint)."""
  heads = config.heads.copy_and_resolve_references()
  with heads.unlocked():
    heads.kind = kind
  model = pm.build_model(heads, image_size)
  subdir = workdir_lib.head_subdir(kind, seed_index)
  params, _ = checkpoint_lib.load_inference_params(workdir, os.path.join(subdir, CHECKPOINTS), tree="params")
  return model, jax.device_get(params), push.load_record(os.path.join(workdir, subdir))
