"""Push with provenance on a small untrained network: class-restricted sources, zero vectors for
prototypes without candidates, exact projection, records and gallery on disk."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import demo
from mrixai_jax.data import phantom
from mrixai_jax.explain import push
from mrixai_jax.models import proto_engine as pe
from mrixai_jax.models import prototypes as pm


def small_heads(kind="ppnet"):
  h = demo.get_config().heads
  h.kind, h.backbone, h.small_cnn_channels = kind, "small_cnn", (8, 16)
  h.purity_per_class = (0.75, 0.5, 0.25)
  h.prototypes_per_class, h.prototype_dim, h.protopool.num_slots = 2, 8, 2
  return h


@pytest.fixture(scope="module")
def split():
  data = phantom.generate(6, 32, 0)
  data["labels"] = np.where(data["labels"] == 3, 1, data["labels"]).astype(np.uint8)  # no vessel anywhere
  return data


def test_push_is_class_restricted_exact_and_recorded(split, tmp_path):
  model = pm.build_model(small_heads(), 32)
  params = pm.init_params(model, jax.random.PRNGKey(0))
  pushed, record = push.push_prototypes(model, params, split, batch_size=4)
  owner = np.asarray(model.tissue_classes)[np.arange(model.num_prototypes) // 2]
  vessel = owner == 3
  # No vessel cell exists: those prototypes keep the zero buffer, as in the original.
  np.testing.assert_array_equal(record["image_index"][vessel], -1)
  np.testing.assert_array_equal(np.asarray(pushed["prototypes"])[vessel], 0.0)
  np.testing.assert_array_equal(record["tissue_class"], np.where(vessel, -1, owner))
  # Each pushed prototype is the exact feature of its source cell, and the nearest allowed one.
  found = ~vessel
  z = np.asarray(pm.features(model, params, jnp.asarray(split["image"])))
  d = np.asarray(pe.l2_distances(jnp.asarray(z), params["prototypes"]))
  index, valid = (np.asarray(a) for a in pm.cell_targets(model, split["labels"]))
  for j in np.nonzero(found)[0]:
    allowed = valid & (np.asarray(model.tissue_classes)[index] == owner[j])
    best = np.unravel_index(np.argmin(np.where(allowed, d[..., j], np.inf)), allowed.shape)
    assert (record["image_index"][j], *record["cell"][j]) == best
    np.testing.assert_allclose(record["distance"][j], d[best + (j,)], rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(pushed["prototypes"])[j, 0, 0], z[best])
  after, _ = pe.min_pool(pe.l2_distances(jnp.asarray(z), pushed["prototypes"]))
  rows = record["image_index"][found]
  np.testing.assert_allclose(np.asarray(after)[rows, np.nonzero(found)[0]], 0.0, atol=1e-5)

  push.save_record(tmp_path, record)
  loaded = push.load_record(tmp_path)
  assert set(loaded) == set(record)
  for key in record:
    np.testing.assert_array_equal(loaded[key], record[key], err_msg=key)
  meta = json.loads((tmp_path / "push.json").read_text())
  assert meta["geometry"]["jump"] == 2.0 and len(meta["prototypes"]) == model.num_prototypes
  first = meta["prototypes"][0]
  assert first["patient_id"] == split["patient_id"][first["image_index"]]
  assert first["window_y0_x0_y1_x1"] == [int(v) for v in record["window"][0]]
  assert not list(tmp_path.glob(".push*"))  # no temporary files left behind
  push.save_gallery(tmp_path / "gallery.png", record, split["image"])
  from PIL import Image
  with Image.open(tmp_path / "gallery.png") as image:
    assert image.format == "PNG" and min(image.size) > 100


def test_protopool_prototypes_may_take_any_tissue_whose_slots_use_them():
  model = pm.build_model(small_heads("protopool"), 32)
  params = pm.init_params(model, jax.random.PRNGKey(1))
  presence = np.zeros((3, 6, 2), np.float32)
  presence[0, [0, 1], [0, 1]] = 1.0  # fat uses prototypes 0, 1
  presence[1, [1, 2], [0, 1]] = 1.0  # FGT uses 1, 2 (1 is shared)
  presence[2, [3, 3], [0, 1]] = 1.0  # vessel uses 3 twice; 4, 5 unused
  allowed = np.asarray(pm.prototype_classes(model, dict(params, presence=jnp.asarray(presence))))
  np.testing.assert_array_equal(allowed, [[1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 1], [0, 0, 0], [0, 0, 0]])
  active = pm.active_prototypes(model, dict(params, presence=jnp.asarray(presence)))
  np.testing.assert_array_equal(active, [True, True, True, True, False, False])


def test_missing_record_names_the_file(tmp_path):
  with pytest.raises(FileNotFoundError, match="push.npz"):
    push.load_record(tmp_path)


@pytest.mark.parametrize("kind", ["ppnet", "eppnet", "protopool"])
def test_single_tissue_class_training_loss_is_finite(kind):
  heads = small_heads(kind)
  heads.tissue_classes, heads.purity_per_class = (1,), (0.75,)
  heads.protopool.num_slots = 2
  model = pm.build_model(heads, 32)
  params = pm.init_params(model, jax.random.PRNGKey(0))
  data = phantom.generate(4, 32, 0)

  def loss(p):
    z = pm.features(model, p, jnp.asarray(data["image"]))
    return pm.cell_loss(model, p, z, jnp.asarray(data["labels"]), jnp.ones(1), heads.loss, 2.0, jax.random.PRNGKey(1))

  (value, metrics), grads = jax.value_and_grad(loss, has_aux=True)(params)
  assert np.isfinite(value), metrics
  assert all(np.isfinite(v) for v in metrics.values()), metrics
  assert metrics["cross_entropy"] == 0.0  # one class: CE degenerates to exactly 0 (prototypes.md §6.1)
  assert all(np.isfinite(g).all() for g in jax.tree_util.tree_leaves(grads))


def _numpy_search(batches, prototype_shape):
  """The original push loop: per batch and prototype, first masked minimum in (b, h, w) order,
  kept only when strictly below the running best; the patch sliced from the feature map."""
  num, h1, w1, _ = prototype_shape
  best = np.full(num, np.inf)
  where = np.zeros((num, 3), np.int64)  # (image, h, w); image −1: none
  where[:, 0] = -1
  patches = np.zeros(prototype_shape, np.float32)
  for z, d, allowed, first in batches:
    for j in range(num):
      masked = np.where(allowed[..., j], d[..., j], np.inf)
      b, h, w = np.unravel_index(np.argmin(masked), masked.shape)
      if masked[b, h, w] < best[j]:
        best[j], where[j] = masked[b, h, w], (first + b, h, w)
        patches[j] = z[b, h:h + h1, w:w + w1]
  return best, where, patches


def test_nearest_patch_search_equals_numpy_loop_with_ties_and_wide_patches():
  rng = np.random.default_rng(3)
  prototype_shape = (5, 2, 3, 4)
  search = push.NearestPatchSearch(prototype_shape)
  batches = []
  for first in (0, 3, 6):
    z = rng.uniform(size=(3, 6, 7, 4)).astype(np.float32)
    d = rng.integers(0, 4, (3, 5, 5, 5)).astype(np.float32)  # few values: ties inside and across batches
    allowed = rng.uniform(size=d.shape) < 0.3
    allowed[..., 4] = False  # prototype 4 never has a candidate
    batches.append((z, d, allowed, first))
    search.update(jnp.asarray(z), jnp.asarray(d), jnp.asarray(allowed), first)
  best, where, patches = _numpy_search(batches, prototype_shape)
  np.testing.assert_array_equal(search.distance, best)
  np.testing.assert_array_equal(np.column_stack([search.image, search.cell]), where)
  assert search.image[4] == -1 and np.isinf(search.distance[4])
  np.testing.assert_array_equal(search.patches, patches)


def test_explaining_a_prototypes_own_source_image_gives_rho_one_at_its_source_window(split):
  from mrixai_jax.explain import head_explainer  # pylint: disable=g-import-not-at-top
  model = pm.build_model(small_heads(), 32)
  pushed, record = push.push_prototypes(model, pm.init_params(model, jax.random.PRNGKey(1)), split, batch_size=4)
  explainer = head_explainer.HeadExplainer(model, jax.device_get(pushed), record, batch_size=4)
  window = int(record["jump"]) * 2
  for j in np.nonzero(record["image_index"] >= 0)[0]:
    source = split["image"][record["image_index"][j]][None]
    scored = head_explainer.score(explainer, source, split["image"], window)
    np.testing.assert_array_equal(scored["firing_window"][0, j], scored["source_window"][j])
    assert scored["rho"][0, j] == pytest.approx(1.0, abs=1e-5), j


def test_outputs_from_cached_trunk_features_equal_outputs_from_the_images(split):
  from mrixai_jax.explain import head_explainer  # pylint: disable=g-import-not-at-top
  from mrixai_jax.training import feature_cache  # pylint: disable=g-import-not-at-top
  model = pm.build_model(small_heads("protopool"), 32)
  pushed, record = push.push_prototypes(model, pm.init_params(model, jax.random.PRNGKey(2)), split, batch_size=4)
  explainer = head_explainer.HeadExplainer(model, jax.device_get(pushed), record, batch_size=4)
  images = np.random.default_rng().uniform(-1, 1, (5, 32, 32, 1)).astype(np.float32)
  trunk = explainer.trunk_features({"a": split["image"][:3], "b": None, "c": images})
  assert set(trunk) == {"a", "c"} and len(trunk["a"]) == 3
  direct, cached = explainer.outputs(images), explainer.trunk_outputs(trunk["c"])
  np.testing.assert_allclose(cached["pooled_similarity"], direct["pooled_similarity"], rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(cached["argmin"], direct["argmin"])
  again = explainer.trunk_features({"a": split["image"][:3], "c": images})
  assert again["c"].base is trunk["c"].base  # the same cached array, not computed again
  feature_cache.forget()
