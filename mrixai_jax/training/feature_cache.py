"""Backbone features of the heads' training split, kept in host memory while the trunk is frozen.

While the backbone does not train (phases whose backbone learning rate is 0: warm and last layer,
every phase when `heads.train.lr_backbone = 0` as in the demo), its output for an image never
changes, and it is nearly all of a training step (demo, 16 images of 64²: 68 ms from the images,
6 ms from cached features; benchmarks/heads_feature_cache.py). The trunk then runs once over the
split and the batches carry its output instead of the images: the same batches and losses up to
float32 rounding (the trunk sees other batches than the step's).
"""

import hashlib
import time

import jax
import numpy as np
from absl import logging

from mrixai_jax import progress
from mrixai_jax.data.pipeline import BatchIterator
from mrixai_jax.models import prototypes as pm

BYTES_PER_MB = 2 ** 20


def trunk_shape(model: pm.ProtoModel, num_images: int) -> tuple:
  """`(N, n, n, C)`: the shape of the trunk features of `num_images` images."""
  return (num_images, model.cells, model.cells, model.backbone_channels)


def trunk_bytes(model: pm.ProtoModel, num_images: int) -> int:
  """Bytes of the float32 trunk features of `num_images` images."""
  return int(np.prod(trunk_shape(model, num_images))) * np.dtype(np.float32).itemsize


def worth_caching(model: pm.ProtoModel, num_images: int, images_ahead: int, budget_mb: float) -> bool:
  """Whether to cache: the frozen stretch will pass `images_ahead` images through the trunk, more than
  the `num_images` the cache costs once, and the cache fits in `budget_mb` MB (0: never cache)."""
  return budget_mb > 0 and images_ahead > num_images and trunk_bytes(model, num_images) <= budget_mb * BYTES_PER_MB


def fingerprint(backbone_params, images) -> str:
  """Digest of the trunk's parameters (structure, shapes, values) and the images it would see."""
  digest = hashlib.sha256(str(jax.tree_util.tree_structure(backbone_params)).encode())
  for leaf in jax.tree_util.tree_leaves(backbone_params) + [images]:
    leaf = np.ascontiguousarray(leaf)
    digest.update(f"{leaf.shape}{leaf.dtype}".encode())
    digest.update(leaf.data)
  return digest.hexdigest()


class _LastFeatures:
  """The last computed features, reused while the trunk and the images stay the same (the study's
  seeds and head kinds over one frozen ImageNet trunk compute them once)."""

  key, features = None, None


def compute_or_reuse(model: pm.ProtoModel, backbone_params, images, batch_size: int, label: str,
                     should_stop=lambda: False):
  """`compute`, or the features of the previous call when its trunk params and images were equal
  (`fingerprint`; the same arrays, so training from them is bitwise the same)."""
  key = fingerprint(backbone_params, images)
  if _LastFeatures.key != key:
    _LastFeatures.key, _LastFeatures.features = None, None  # free the old cache before computing
    features = compute(model, backbone_params, images, batch_size, label, should_stop)
    if features is None:
      return None
    _LastFeatures.key, _LastFeatures.features = key, features
  return _LastFeatures.features


def forget() -> None:
  """Drops the features `compute_or_reuse` keeps (host memory: up to `heads.train.feature_cache_mb`)."""
  _LastFeatures.key, _LastFeatures.features = None, None


def compute(model: pm.ProtoModel, backbone_params, images, batch_size: int, label: str,
            should_stop=lambda: False):
  """Trunk features `[N, n, n, C]` float32 of `images: [N, S, S, 1]` in [-1, 1], with progress lines;
  `backbone_params`: the `params["backbone"]` tree of the network. Images go through
  `pm.inference_batch` at a time (demo, 64²: 32 images per call run at 259 img/s, 64 at 141 img/s;
  benchmarks/heads_feature_cache.py). Returns None as soon as `should_stop()` is true (checked
  before every call)."""
  trunk = jax.jit(lambda p, x: pm.backbone_features(model, {"backbone": p}, x))
  out = np.empty(trunk_shape(model, len(images)), np.float32)
  for rows in progress.batch_slices(len(images), pm.inference_batch(model, batch_size), label):
    if should_stop():
      return None
    out[rows] = np.asarray(trunk(backbone_params, images[rows]))
  return out


class TrainInputs:
  """Training batches of one head, `{"image" | "trunk", "labels"}`, in `BatchIterator`'s order.

  `prepare(step, state)` before each step keeps trunk features of the split in `trunk` (and in the
  batches, instead of the images) while the backbone is fixed and caching pays; they are dropped as
  soon as the backbone trains, so a cache always matches the params. `fixed_until(step)`: the first
  step at or after `step` at which the backbone trains; `push_step`: the step the push precedes.
  """

  def __init__(self, model: pm.ProtoModel, data: dict, train, fixed_until, push_step: int, batch_sharding,
               name: str):
    self._model, self._data, self._train, self._name = model, data, train, name
    self._fixed_until, self._push_step, self._sharding = fixed_until, push_step, batch_sharding
    self.trunk = None
    self._over_budget_until = None
    self._batches = self._iterator({"image": data["image"]})
    self.batches_per_epoch = self._batches.batches_per_epoch

  def _iterator(self, inputs: dict) -> BatchIterator:
    return BatchIterator(dict(inputs, labels=self._data["labels"]), int(self._train.batch_size),
                         seed=int(self._train.seed), sharding=self._sharding, prefetch=2)

  def _switch(self, inputs: dict) -> None:
    position = self._batches.get_state()
    self._batches.close()
    self._batches = self._iterator(inputs)
    self._batches.set_state(position)

  def prepare(self, step: int, state: dict, should_stop=lambda: False) -> None:
    """Before `step` (and the push before it): drops the cache when the backbone trains at `step`,
    else builds one from `state.params` if there is none and it pays (`worth_caching`). A build
    cut short by `should_stop()` (a stop signal) leaves the batches on the images."""
    fixed_until = self._fixed_until(step)
    if fixed_until == step:
      if self.trunk is not None:
        self.trunk = None
        self._switch({"image": self._data["image"]})
      return
    if self.trunk is not None:
      return
    num = len(self._data["image"])
    push_ahead = not int(state.extras["pushed"]) and step <= self._push_step <= fixed_until
    images_ahead = (fixed_until - step) * int(self._train.batch_size) + (num if push_ahead else 0)
    budget_mb = float(self._train.feature_cache_mb)
    if not worth_caching(self._model, num, images_ahead, budget_mb):
      if images_ahead > num and budget_mb > 0 and self._over_budget_until != fixed_until:
        self._over_budget_until = fixed_until  # say it once per stretch
        logging.info("%s: backbone fixed for steps %d..%d, but the features of %d training images (%.0f MB) "
                     "exceed heads.train.feature_cache_mb = %g: the steps run the backbone", self._name, step,
                     fixed_until - 1, num, trunk_bytes(self._model, num) / BYTES_PER_MB, budget_mb)
      return
    start = time.perf_counter()
    self.trunk = compute_or_reuse(self._model, jax.device_get(state.params["backbone"]), self._data["image"],
                                  int(self._train.push_batch_size), f"{self._name}: backbone features", should_stop)
    if self.trunk is None:
      return
    logging.debug("%s: backbone fixed for steps %d..%d: features of %d training images cached (%.0f MB) in %.1f s",
                  self._name, step, fixed_until - 1, num, self.trunk.nbytes / BYTES_PER_MB,
                  time.perf_counter() - start)
    self._switch({"trunk": self.trunk})

  def __next__(self) -> dict:
    return next(self._batches)

  def get_state(self) -> dict:
    return self._batches.get_state()

  def set_state(self, position: dict) -> None:
    self._batches.set_state(position)

  def close(self) -> None:
    self._batches.close()
