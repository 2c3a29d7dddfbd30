"""Trained heads on the phantom (small config): tissue coverage, distinct pushed prototypes with
correct provenance, tissue-specific firing on held-out slices, resume; phase optimizers."""

import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import demo
from mrixai_jax.data import phantom
from mrixai_jax.explain import tissue_firing
from mrixai_jax.models import prototypes as pm
from mrixai_jax.training import heads_task, loop

TISSUES = (1, 2, 3)


def small_config(kind: str):
  c = demo.get_config()
  h = c.heads
  h.kind = kind
  h.backbone = "small_cnn"
  h.small_cnn_channels = (16, 32, 32)
  h.purity_per_class = (0.75, 0.5, 0.25)
  h.prototypes_per_class = 2
  h.prototype_dim = 32
  h.protopool.num_slots = 2
  h.protopool.gumbel_epochs = 2
  t = h.train
  t.num_steps, t.warm_steps, t.last_layer_steps = 240, 40, 40
  t.batch_size, t.push_batch_size, t.log_every, t.checkpoint_every = 8, 16, 80, 1000
  return c


@pytest.fixture(scope="module")
def phantom_split():
  return phantom.generate(48, 64, 0), phantom.generate(24, 64, 0, start=1000)  # disjoint patients


@pytest.fixture(scope="module", params=["ppnet", "eppnet", "protopool"])
def trained(request, phantom_split, tmp_path_factory):
  print("training", request.param)
  config = small_config(request.param)
  workdir = str(tmp_path_factory.mktemp(request.param))
  model, params, record = heads_task.train(config, workdir, data=phantom_split[0])
  return config, workdir, model, params, record


def test_prototypes_cover_every_tissue_and_are_distinct(trained):
  _, _, model, params, record = trained
  tissue = record["tissue_class"]
  assert set(TISSUES) <= set(tissue.tolist()), tissue
  protos = np.asarray(params["prototypes"]).reshape(len(tissue), -1)
  for t in TISSUES:
    members = np.nonzero(tissue == t)[0]
    sources = {(int(record["image_index"][j]), *map(int, record["cell"][j])) for j in members}
    assert len(sources) == len(members), f"tissue {t}: two prototypes share a source cell"
    for a in members:
      for b in members[members > a]:
        assert np.sum((protos[a] - protos[b]) ** 2) > 1e-6, f"prototypes {a} and {b} are duplicates"
  unused = tissue == -1  # ProtoPool prototypes in no slot: zero vectors, as in the original
  assert model.kind == "protopool" or not unused.any()
  np.testing.assert_array_equal(protos[unused], 0.0)


def test_push_provenance_points_at_the_source_feature(trained, phantom_split):
  _, _, model, params, record = trained
  train = phantom_split[0]
  found = np.nonzero(record["image_index"] >= 0)[0]
  z = pm.features(model, params, jnp.asarray(train["image"][record["image_index"][found]]))
  h, w = record["cell"][found].T
  source = np.asarray(z)[np.arange(len(found)), h, w]
  np.testing.assert_allclose(source, np.asarray(params["prototypes"])[found, 0, 0], rtol=0, atol=1e-6)
  # The source cell is labelled with the prototype's tissue, the window is that cell's pixels.
  index, valid = pm.cell_targets(model, train["labels"][record["image_index"][found]])
  np.testing.assert_array_equal(np.asarray(valid)[np.arange(len(found)), h, w], True)
  labels = np.asarray(model.tissue_classes)[np.asarray(index)[np.arange(len(found)), h, w]]
  np.testing.assert_array_equal(labels, record["tissue_class"][found])
  np.testing.assert_array_equal(record["window"][found], np.stack([4 * h, 4 * w, 4 * h + 4, 4 * w + 4], -1))
  np.testing.assert_array_equal(record["patient_id"][found], train["patient_id"][record["image_index"][found]])
  for j in found:
    y0, x0, y1, x1 = record["window"][j]
    np.testing.assert_array_equal(record["source_patch"][j], train["image"][record["image_index"][j], y0:y1, x0:x1, 0])


def test_prototypes_fire_inside_their_tissue_on_held_out_slices(trained, phantom_split):
  """Hit: the arg-min cell qualifies for the prototype's tissue; chance: a uniformly random cell.

  With this tiny CNN, thin vessels (1-2 px, ~1 % of the cells) get only a few hits; they are
  checked pooled here, and per tissue on the demo config (VGG16 trunk) in the README numbers.
  """
  _, _, model, params, record = trained
  test = phantom_split[1]
  hit, chance = tissue_firing.firing_hits(model, params, test["image"], test["labels"], record["tissue_class"])
  used = record["tissue_class"] >= 0
  assert hit[:, used].mean() >= 4 * chance[:, used].mean(), (hit[:, used].mean(), chance[:, used].mean())
  rates = tissue_firing.tissue_firing_rates(model, params, test["image"], test["labels"], record["tissue_class"])
  print(model.kind, rates)
  for t in (1, 2):  # fat, FGT
    assert rates[t]["ratio"] >= 3, (t, rates)


def test_outputs_written_and_a_second_run_resumes_without_training(trained, phantom_split):
  config, workdir, _, params, record = trained
  out = heads_task.head_dir(workdir, config.heads.kind)
  for name in ("push.npz", "push.json", "prototype_gallery.png"):
    assert (pathlib.Path(out) / name).stat().st_size > 0, name
  events = sorted((pathlib.Path(out) / "logs").glob("events.out.tfevents.*"))  # TensorBoard, as the diffusion run
  assert events and events[0].stat().st_size > 0
  sizes = [p.stat().st_size for p in events]
  _, params2, record2 = heads_task.train(config, workdir, data=phantom_split[0])
  assert [p.stat().st_size for p in events] == sizes  # nothing re-trained, nothing logged
  jax.tree_util.tree_map(np.testing.assert_array_equal, params, params2)
  np.testing.assert_array_equal(record["image_index"], record2["image_index"])
  _, params3, _ = heads_task.load(config, workdir, config.heads.kind, 64)
  jax.tree_util.tree_map(np.testing.assert_array_equal, params, params3)


@pytest.mark.parametrize("trained", ["protopool"], indirect=True)  # the runner is shared; ProtoPool
def test_interrupted_run_resumes_to_the_same_head(trained, phantom_split, tmp_path):  # adds Gumbel draws
  config, _, _, params, record = trained
  _, _, none = heads_task.train(config, str(tmp_path), data=phantom_split[0], stop_at=120)  # mid joint phase
  assert none is None
  _, resumed, record2 = heads_task.train(config, str(tmp_path), data=phantom_split[0])
  jax.tree_util.tree_map(np.testing.assert_array_equal, params, resumed)
  np.testing.assert_array_equal(record["image_index"], record2["image_index"])


def test_nis_of_a_trained_head_is_a_distribution(trained, phantom_split):
  from mrixai_jax.explain.influence import normalized_influence
  _, _, model, params, _ = trained
  nis = normalized_influence(pm.pooled_similarity(model, params, jnp.asarray(phantom_split[1]["image"][:4])))
  assert nis.shape == (4, model.num_prototypes) and np.isfinite(nis).all()
  np.testing.assert_allclose(nis.sum(-1), 1.0, rtol=1e-5)


def test_phase_optimizers_freeze_groups_and_use_coupled_l2():
  t = small_config("ppnet").heads.train
  params = {"backbone": jnp.ones(3), "add_on": jnp.full(3, 2.0), "prototypes": jnp.ones(3), "last_layer": jnp.ones(3)}
  zero = jax.tree_util.tree_map(jnp.zeros_like, params)
  for phase, moving in (("warm", {"add_on"}), ("joint", {"add_on"} | ({"backbone"} if t.lr_backbone > 0 else set())),
                        ("last_layer", set())):
    opt = heads_task.make_optimizer(t, phase, steps_per_epoch=2)
    updates, _ = opt.update(zero, opt.init(params), params)
    for group, u in updates.items():  # zero gradient: only coupled L2 on backbone/add-on can move
      assert bool(jnp.any(u != 0)) == (group in moving), (phase, group)
  grads = jax.tree_util.tree_map(jnp.ones_like, params)
  opt = heads_task.make_optimizer(t, "last_layer", steps_per_epoch=2)
  updates, _ = opt.update(grads, opt.init(params), params)
  np.testing.assert_allclose(updates["last_layer"], -t.lr_last_layer, rtol=1e-4)  # Adam's first step: -lr·sign
  assert all(float(jnp.abs(updates[g]).max()) == 0.0 for g in ("backbone", "add_on", "prototypes"))
  opt = heads_task.make_optimizer(t, "joint", steps_per_epoch=2)
  state = opt.init(params)
  for _ in range(2 * t.joint_decay_epochs + 1):  # past one StepLR period: lr × gamma
    updates, state = opt.update(grads, state, params)
  np.testing.assert_allclose(updates["prototypes"], -t.lr_prototypes * t.joint_decay_gamma, rtol=1e-3)


def test_phase_bounds_validate():
  t = small_config("ppnet").heads.train
  assert heads_task.phase_bounds(t) == (40, 200, 240)
  phases = heads_task.phases(t, steps_per_epoch=2)
  assert [loop.phase_at(phases, s).name for s in (0, 39, 40, 199, 200, 239)] == \
      ["warm", "warm", "joint", "joint", "last_layer", "last_layer"]
  warm = frozenset({"add_on", "prototypes", "presence"})
  assert [p.trainable for p in phases] == [warm, warm | ({"backbone"} if t.lr_backbone > 0 else set()),
                                           frozenset({"last_layer"})]
  t.last_layer_steps = 300
  with pytest.raises(ValueError, match="warm_steps"):
    heads_task.phase_bounds(t)
