"""Heads training from cached backbone features: the cache is used exactly while the backbone is
fixed, keeps the batch order, and training / push from it equal training / push from the images."""

import contextlib
import logging
import types

import jax
import numpy as np
import pytest

from configs import demo
from mrixai_jax.data import phantom
from mrixai_jax.data.pipeline import BatchIterator
from mrixai_jax.explain import push
from mrixai_jax.models import prototypes as pm
from mrixai_jax.training import feature_cache
from mrixai_jax.training import heads_task

WARM, PUSH, NUM = 6, 14, 20  # phase bounds of the runs below: warm [0, 6), joint [6, 14), last layer [14, 20)


def small_config(lr_backbone: float, cache_mb: float = 64):
  c = demo.get_config()
  h = c.heads
  h.backbone, h.small_cnn_channels = "small_cnn", (8, 16)
  h.purity_per_class = (0.75, 0.5, 0.25)
  h.prototypes_per_class, h.prototype_dim = 2, 8
  t = h.train
  t.num_steps, t.warm_steps, t.last_layer_steps = NUM, WARM, NUM - PUSH
  t.batch_size, t.push_batch_size, t.log_every, t.checkpoint_every = 4, 8, 100, 1000
  t.lr_backbone, t.feature_cache_mb = lr_backbone, cache_mb
  return c


@pytest.fixture(scope="module")
def split():
  return phantom.generate(12, 32, 0)


@pytest.mark.parametrize("lr_backbone, expected", [
    (1e-3, {0: WARM, 3: WARM, WARM: WARM, PUSH - 1: PUSH - 1, PUSH: NUM, NUM - 1: NUM}),
    (0.0, {0: NUM, WARM: NUM, PUSH: NUM}),
])
def test_backbone_fixed_until(lr_backbone, expected):
  train = small_config(lr_backbone).heads.train
  bounds = heads_task.phase_bounds(train)
  assert {step: heads_task.backbone_fixed_until(train, bounds, step) for step in expected} == expected


def test_worth_caching_counts_images_and_bytes():
  model = pm.build_model(small_config(0.0).heads, 32)
  nbytes = feature_cache.trunk_bytes(model, 100)
  assert nbytes == 100 * model.cells ** 2 * model.backbone_channels * 4
  mb = nbytes / feature_cache.BYTES_PER_MB
  assert feature_cache.worth_caching(model, 100, 101, mb)
  assert not feature_cache.worth_caching(model, 100, 100, mb)  # no images saved
  assert not feature_cache.worth_caching(model, 100, 101, mb * 0.99)  # over the budget
  assert not feature_cache.worth_caching(model, 100, 101, 0)  # 0: never


@contextlib.contextmanager
def train_inputs(split, config):
  """`(inputs, state, model)`: a head's `TrainInputs` over `split`, its step-0 state (closed on exit)."""
  train = config.heads.train
  model = pm.build_model(config.heads, 32)
  bounds = heads_task.phase_bounds(train)
  inputs = feature_cache.TrainInputs(model, split, train, lambda s: heads_task.backbone_fixed_until(train, bounds, s),
                                     bounds[1], None, "test")
  try:
    yield inputs, types.SimpleNamespace(params=pm.init_params(model, jax.random.PRNGKey(0)),
                                        extras={"pushed": np.int32(0)}), model
  finally:
    inputs.close()


def test_train_inputs_cache_while_backbone_is_fixed_in_batch_order(split):
  config = small_config(1e-3)
  train = config.heads.train
  plain = BatchIterator({"labels": split["labels"], "image": split["image"]}, train.batch_size, seed=train.seed,
                        prefetch=0)  # no thread to stop
  with train_inputs(split, config) as (inputs, state, model):
    for step in range(NUM):
      if step == PUSH:
        state.extras["pushed"] = np.int32(1)
      inputs.prepare(step, state)
      batch, expected = next(inputs), next(plain)
      np.testing.assert_array_equal(batch["labels"], expected["labels"])
      fixed = step < WARM or step >= PUSH
      assert ("trunk" in batch) == fixed and ("image" in batch) == (not fixed), step
      if fixed:  # the cached rows are the backbone's features of this batch's images (batch of 8 vs 4)
        trunk = pm.backbone_features(model, state.params, expected["image"])
        np.testing.assert_allclose(batch["trunk"], trunk, rtol=1e-5, atol=1e-6)


def test_push_from_cached_trunk_equals_push_from_images(split):
  model = pm.build_model(small_config(0.0).heads, 32)
  params = pm.init_params(model, jax.random.PRNGKey(1))
  trunk = feature_cache.compute(model, params["backbone"], split["image"], 5, "test")
  from_images, record_images = push.push_prototypes(model, params, split, 4)
  from_trunk, record_trunk = push.push_prototypes(model, params, split, 4, trunk=trunk)
  for key in ("image_index", "cell", "tissue_class"):
    np.testing.assert_array_equal(record_trunk[key], record_images[key])
  np.testing.assert_allclose(from_trunk["prototypes"], from_images["prototypes"], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("lr_backbone", [0.0, 1e-3])
def test_training_from_cache_equals_training_from_images(split, tmp_path, lr_backbone):
  """Whole runs (warm, joint, push, last layer) with and without the cache: the same pushes and
  parameters up to float32 rounding (the trunk runs on other batch sizes)."""
  runs = {}
  for cache_mb in (64, 0):
    config = small_config(lr_backbone, cache_mb)
    _, params, record = heads_task.train(config, str(tmp_path / f"mb{cache_mb}"), data=split, pretrained=False)
    runs[cache_mb] = params, record
  (cached, record_cached), (plain, record_plain) = runs[64], runs[0]
  for key in ("image_index", "cell"):
    np.testing.assert_array_equal(record_cached[key], record_plain[key])
  for path, a in jax.tree_util.tree_leaves_with_path(cached):
    b = dict(jax.tree_util.tree_leaves_with_path(plain))[path]
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5, err_msg=jax.tree_util.keystr(path))


def test_over_budget_trains_from_images_and_says_so(split, caplog):
  with train_inputs(split, small_config(0.0, cache_mb=1e-3)) as (inputs, state, _), caplog.at_level(logging.INFO):
    for step in range(3):
      inputs.prepare(step, state)
      assert "image" in next(inputs) and inputs.trunk is None
  said = [r.getMessage() for r in caplog.records if "exceed heads.train.feature_cache_mb" in r.getMessage()]
  assert len(said) == 1, said


def test_a_stop_signal_cuts_the_cache_build_short(split):
  with train_inputs(split, small_config(0.0)) as (inputs, state, _):
    inputs.prepare(0, state, should_stop=lambda: True)
    assert inputs.trunk is None and "image" in next(inputs)
    inputs.prepare(1, state)  # no stop: the cache is built on the next call
    assert inputs.trunk is not None and "trunk" in next(inputs)


def test_features_are_reused_only_for_the_same_trunk_and_images(split):
  model = pm.build_model(small_config(0.0).heads, 32)
  params = pm.init_params(model, jax.random.PRNGKey(1))
  other = pm.init_params(model, jax.random.PRNGKey(2))
  feature_cache.forget()
  first = feature_cache.compute_or_reuse(model, jax.device_get(params["backbone"]), split["image"], 5, "test")
  again = feature_cache.compute_or_reuse(model, jax.device_get(params["backbone"]), split["image"].copy(), 5, "test")
  assert again is first  # equal params and images: the kept features
  changed = feature_cache.compute_or_reuse(model, jax.device_get(other["backbone"]), split["image"], 5, "test")
  assert changed is not first
  np.testing.assert_allclose(changed, feature_cache.compute(model, other["backbone"], split["image"], 5, "test"),
                             rtol=1e-6, atol=1e-6)
  shifted = feature_cache.compute_or_reuse(model, jax.device_get(other["backbone"]), split["image"] + 0.5, 5, "test")
  assert shifted is not changed
  feature_cache.forget()
