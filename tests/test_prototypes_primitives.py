"""Prototype primitives against the float64 reference vectors of prototypes.md (tests/data copy).

float64 runs (jax.enable_x64) must match to 1e-6; float32 runs to the tolerances of §7.2.
"""

import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mrixai_jax.explain import influence, push, scoring
from mrixai_jax.models import proto_engine as pe
from mrixai_jax.models import proto_heads as ph
from mrixai_jax.models import receptive_field as rf
from mrixai_jax.models import tissue_cells

TV = json.loads((pathlib.Path(__file__).parent / "data" / "prototypes_testvectors.json").read_text())
F64 = dict(rtol=0, atol=1e-6)


def arr(key):
  return np.asarray(TV[key], np.float64)


def nhwc(key):  # NCHW reference layout -> NHWC
  return np.transpose(arr(key), (0, 2, 3, 1))


def protos(key):  # [P, D(, h, w)] -> [P, h, w, D]
  p = arr(key)
  return p[:, None, None, :] if p.ndim == 2 else np.transpose(p, (0, 2, 3, 1))


@pytest.fixture
def x64():
  with jax.enable_x64(True):
    yield


def t1_forward():
  z, p = jnp.asarray(nhwc("T1.x")), jnp.asarray(protos("T1.p"))
  d = pe.l2_distances(z, p)
  dmin, argmin = pe.min_pool(d)
  return z, p, d, dmin, argmin


def test_distances_pooling_similarity_t1(x64):
  _, _, d, dmin, argmin = t1_forward()
  assert d.dtype == jnp.float64
  np.testing.assert_allclose(d, np.transpose(arr("T1.dist"), (0, 2, 3, 1)), **F64)
  np.testing.assert_allclose(dmin, arr("T1.min_dist"), **F64)
  np.testing.assert_array_equal(argmin, arr("T1.argmin_flat_hw"))
  np.testing.assert_allclose(pe.log_similarity(dmin), arr("T1.sim_log"), **F64)


def test_distance_kernel_matches_direct_difference_on_random_inputs(x64):
  rng = np.random.default_rng(7)
  z = rng.uniform(size=(3, 5, 6, 8))
  p = rng.uniform(size=(4, 2, 3, 8))
  direct = np.empty((3, 4, 4, 4))
  for h in range(4):
    for w in range(4):
      patch = z[:, h:h + 2, w:w + 3, :]
      direct[:, h, w, :] = ((patch[:, None] - p[None]) ** 2).sum(axis=(2, 3, 4))
  np.testing.assert_allclose(pe.l2_distances(jnp.asarray(z), jnp.asarray(p)), direct, rtol=0, atol=1e-12)


def test_two_by_two_prototypes_t2(x64):
  z, p = jnp.asarray(nhwc("T1.x")), jnp.asarray(protos("T2.p"))
  d = pe.l2_distances(z, p)
  np.testing.assert_allclose(d, np.transpose(arr("T2.dist"), (0, 2, 3, 1)), **F64)
  np.testing.assert_allclose(pe.min_pool(d)[0], arr("T2.min_dist"), **F64)
  assert pe.max_distance(p.shape) == TV["T2.max_dist_const"]


def test_float32_path_within_stated_tolerance():
  z, p = jnp.asarray(nhwc("T1.x"), jnp.float32), jnp.asarray(protos("T1.p"), jnp.float32)
  dmin, _ = pe.min_pool(pe.l2_distances(z, p))
  assert dmin.dtype == jnp.float32
  np.testing.assert_allclose(dmin, arr("T1.min_dist"), rtol=0, atol=1e-6)
  np.testing.assert_allclose(pe.log_similarity(dmin), arr("T1.sim_log"), rtol=1e-5, atol=0)


def test_min_pool_routes_gradient_to_first_tie(x64):
  d = jnp.asarray([[[[1.0], [0.5]], [[0.5], [2.0]]]])  # [1, 2, 2, 1], tie at (0,1) and (1,0)
  grad = jax.grad(lambda v: pe.min_pool(v)[0].sum())(d)
  np.testing.assert_array_equal(grad[0, :, :, 0], [[0.0, 1.0], [0.0, 0.0]])


def test_ppnet_logits_and_every_loss_term_t1(x64):
  _, _, _, dmin, _ = t1_forward()
  identity = ph.class_identity(2, 2)
  w = ph.last_layer_init(identity, -0.5)
  np.testing.assert_allclose(w, arr("T1.last_layer_W"), **F64)
  np.testing.assert_allclose(ph.ppnet_logits(dmin, w), arr("T1.logits"), **F64)
  labels = jnp.asarray(TV["T1.y"])
  terms = ph.ppnet_terms(dmin, labels, jnp.ones(2), jnp.ones(2), identity, w, 3.0)
  for name, key in [("cross_entropy", "T1.cross_entropy"), ("cluster", "T1.cluster"),
                    ("separation", "T1.separation"), ("avg_separation", "T1.avg_separation"),
                    ("l1", "T1.l1_masked")]:
    np.testing.assert_allclose(terms[name], TV[key], **F64, err_msg=name)
  total = terms["cross_entropy"] + 0.8 * terms["cluster"] - 0.08 * terms["separation"] + 1e-4 * terms["l1"]
  np.testing.assert_allclose(total, TV["T1.total_loss"], **F64)


def test_ppnet_loss_gradient_matches_finite_differences(x64):
  z = jnp.asarray(nhwc("T1.x"))
  identity = ph.class_identity(2, 2)
  labels = jnp.asarray(TV["T1.y"])

  @jax.jit
  def loss(p, w):
    dmin, _ = pe.min_pool(pe.l2_distances(z, p))
    t = ph.ppnet_terms(dmin, labels, jnp.ones(2), jnp.ones(2), identity, w, 3.0)
    return t["cross_entropy"] + 0.8 * t["cluster"] - 0.08 * t["separation"] + 1e-4 * t["l1"]

  p, w = jnp.asarray(protos("T1.p")), ph.last_layer_init(identity, -0.5)
  gp, gw = jax.grad(loss, argnums=(0, 1))(p, w)
  step = 1e-6
  for idx in np.ndindex(*p.shape):
    e = jnp.zeros_like(p).at[idx].set(step)
    fd = (loss(p + e, w) - loss(p - e, w)) / (2 * step)
    np.testing.assert_allclose(gp[idx], fd, rtol=1e-5, atol=1e-7)
  for idx in np.ndindex(*w.shape):
    e = jnp.zeros_like(w).at[idx].set(step)
    np.testing.assert_allclose(gw[idx], (loss(p, w + e) - loss(p, w - e)) / (2 * step), rtol=1e-5, atol=1e-7)


def test_push_selection_t3(x64):
  z, p, d, _, _ = t1_forward()
  labels = np.asarray(TV["T1.y"])
  owner = np.arange(4) // 2
  allowed = np.broadcast_to((labels[:, None] == owner)[:, None, None, :], d.shape)
  search = push.NearestPatchSearch(p.shape)
  search.update(z, d, jnp.asarray(allowed), first_image=0)
  where = np.column_stack([search.image, search.cell])
  np.testing.assert_array_equal(where, arr("T3.push_index_img_h_w"))
  np.testing.assert_allclose(search.distance, arr("T3.push_min_dist"), **F64)
  np.testing.assert_allclose(search.patches[:, 0, 0, :], arr("T3.new_prototypes"), rtol=0, atol=1e-7)
  dmin_after, _ = pe.min_pool(pe.l2_distances(z, jnp.asarray(search.patches, jnp.float64)))
  np.testing.assert_allclose(dmin_after, arr("T3.min_dist_after_push"), atol=1e-6, rtol=0)


def test_push_strict_order_across_batches_and_unfound_prototypes(x64):
  z, p, d, _, _ = t1_forward()
  search = push.NearestPatchSearch(p.shape)
  allowed = np.zeros(d.shape, bool)
  allowed[..., :3] = True  # prototype 3 never has a candidate
  for b in range(2):  # the same image twice: the first batch must keep the record (strict <)
    search.update(z[:1], d[:1], jnp.asarray(allowed[:1]), first_image=10 * b)
  assert (search.image[:3] == 0).all()
  assert search.image[3] == -1 and np.isinf(search.distance[3])
  np.testing.assert_array_equal(search.patches[3], 0.0)


def _resnet_layers(blocks, bottleneck):
  layers = [(7, 2, 3), (3, 2, 1)]
  for stage, count in enumerate(blocks):
    for b in range(count):
      s = 2 if stage > 0 and b == 0 else 1
      layers += [(1, 1, 0), (3, s, 1), (1, 1, 0)] if bottleneck else [(3, s, 1), (3, 1, 1)]
  return layers


VGG19 = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
         512, 512, 512, 512, "M"]
ARCHS = {"vgg19": rf.vgg_layers(VGG19), "resnet18": _resnet_layers([2, 2, 2, 2], False),
         "resnet34": _resnet_layers([3, 4, 6, 3], False), "resnet50": _resnet_layers([3, 4, 6, 3], True)}


@pytest.mark.parametrize("arch", sorted(ARCHS))
@pytest.mark.parametrize("size", [224, 256])
def test_receptive_field_t4(arch, size):
  info = rf.receptive_field(size, ARCHS[arch])
  assert list(info) == TV[f"T4.{arch}.img{size}.rf_info[n,jump,r,start]"]
  boxes = [list(rf.rf_box(info, h, w, size)) for h, w in [(0, 0), (3, 3), (info.n - 1, info.n - 1)]]
  assert boxes == TV[f"T4.{arch}.img{size}.boxes[(0,0),(3,3),(n-1,n-1)]"]


def test_high_activation_crop_t4():
  act = arr("T4.crop_input_12x12")
  np.testing.assert_allclose(np.percentile(act, 95), TV["T4.crop_threshold_p95"], rtol=0, atol=1e-12)
  assert list(rf.high_activation_box(act)) == TV["T4.crop_box[y0,y1,x0,x1]"]


def test_cell_window_is_inside_and_centred():
  info = rf.receptive_field(64, rf.vgg_layers([64, 64, "M", 128, 128, "M", 256, 256, 256]))
  assert (info.n, info.jump, info.start) == (16, 4, 2.0)
  assert scoring.cell_window(info, 3, 5, 4, 64) == (12, 20, 16, 24)  # exactly the cell's own block
  assert scoring.cell_window(info, 0, 15, 12, 64) == (0, 52, 12, 64)  # shifted inside, not truncated
  with pytest.raises(ValueError, match="window size"):
    scoring.cell_window(info, 0, 0, 65, 64)


def protopool_inputs():
  z, p = jnp.asarray(nhwc("T5.x")), jnp.asarray(protos("T5.p"))
  d = pe.l2_distances(z, p)
  return d, pe.min_pool(d)[0], pe.avg_pool(d)


@pytest.mark.parametrize("tag,scale", [("s0_softmax", 0.0), ("s2_gumbel_tau0.5", 2.0)])
def test_protopool_assignment_focal_logits_losses_t5(x64, tag, scale):
  _, dmin, davg = protopool_inputs()
  np.testing.assert_allclose(dmin, arr("T5.min_dist"), **F64)
  np.testing.assert_allclose(davg, arr("T5.avg_dist"), **F64)
  presence, noise = jnp.asarray(arr("T5.proto_presence")), jnp.asarray(arr("T5.gumbel_noise"))
  q = ph.slot_assignment(presence, scale, noise, 0.5)
  np.testing.assert_allclose(q, arr(f"T5.{tag}.q"), **F64)
  np.testing.assert_allclose(jnp.einsum("bp,cpk->bck", dmin, q), arr(f"T5.{tag}.mixed_min_dist"), **F64)
  np.testing.assert_allclose(jnp.einsum("bp,cpk->bck", davg, q), arr(f"T5.{tag}.mixed_avg_dist"), **F64)
  focal = ph.focal_similarity(dmin, davg, q)
  np.testing.assert_allclose(focal, arr(f"T5.{tag}.focal_sim"), **F64)
  slots = ph.class_identity(2, 2)
  w = ph.last_layer_init(slots, 0.0)
  np.testing.assert_allclose(ph.protopool_logits(focal, w), arr(f"T5.{tag}.logits"), **F64)
  labels = jnp.asarray([0, 1])
  mass = q[labels].sum(-1)
  np.testing.assert_array_equal(ph.top_mass_mask(mass, 2), arr(f"T5.{tag}.cluster_mask"))
  np.testing.assert_array_equal(ph.top_mass_mask(2 - mass, 3), arr(f"T5.{tag}.sep_mask"))
  terms = ph.protopool_terms(dmin, davg, labels, jnp.ones(2), jnp.ones(2), q, presence, w, slots, 3.0)
  np.testing.assert_allclose(terms["cross_entropy"], TV[f"T5.{tag}.cross_entropy"], **F64)
  np.testing.assert_allclose(terms["cluster"], TV[f"T5.{tag}.cluster"], **F64)
  np.testing.assert_allclose(terms["separation"], TV[f"T5.{tag}.separation"], **F64)
  np.testing.assert_allclose(terms["orthogonality"], TV["T5.orth_loss"], **F64)
  assert terms["l1"] == 0.0  # the 1/0 init has no wrong-class weight


def test_protopool_float32_path_within_tolerance():
  z, p = jnp.asarray(nhwc("T5.x"), jnp.float32), jnp.asarray(protos("T5.p"), jnp.float32)
  d = pe.l2_distances(z, p)
  dmin, davg = pe.min_pool(d)[0], pe.avg_pool(d)
  q = ph.slot_assignment(jnp.asarray(arr("T5.proto_presence"), jnp.float32), 2.0,
                         jnp.asarray(arr("T5.gumbel_noise"), jnp.float32), 0.5)
  focal = ph.focal_similarity(dmin, davg, q)
  assert focal.dtype == jnp.float32
  np.testing.assert_allclose(q, arr("T5.s2_gumbel_tau0.5.q"), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(focal, arr("T5.s2_gumbel_tau0.5.focal_sim"), rtol=1e-5, atol=1e-5)


def test_protopool_per_prototype_focal_and_schedule_t5(x64):
  _, dmin, davg = protopool_inputs()
  per_proto = pe.log_similarity(dmin) - pe.log_similarity(davg)
  np.testing.assert_allclose(per_proto, arr("T5.code_focal_per_proto(sim(min_d)-sim(mean_d))"), **F64)
  one_hot = jnp.eye(5)[None]  # q [1, P, K=P]: slot k holds exactly prototype k
  np.testing.assert_allclose(ph.focal_similarity(dmin, davg, one_hot)[:, 0], per_proto, **F64)
  scales = np.asarray([ph.gumbel_scale(e, 30) for e in range(32)])
  np.testing.assert_allclose(scales, arr("T5.gumbel_scale_epochs_0..31"), rtol=1e-12, atol=0)
  np.testing.assert_array_equal(jnp.argmax(jnp.asarray(arr("T5.proto_presence")), axis=1),
                                arr("T5.class_to_proto_map(argmax over P)"))


def test_orthogonality_on_raw_logits_t5(x64):
  presence = jnp.asarray(arr("T5.proto_presence"))
  np.testing.assert_allclose(ph.orthogonality_loss(presence), TV["T5.orth_loss"], **F64)
  np.testing.assert_allclose(ph.orthogonality_loss(presence), TV["T5.orth_loss_offdiag_check"], **F64)


def test_eppnet_mean_cluster_and_diversity_t6(x64):
  _, p, d, _, _ = t1_forward()
  identity = ph.class_identity(2, 2)
  labels = jnp.asarray(TV["T1.y"])
  region = jnp.broadcast_to(labels[:, None, None], d.shape[:3])
  mc = ph.region_mean_cluster(d, region, jnp.ones(d.shape[:3], bool), identity)
  np.testing.assert_allclose(mc, TV["T6.mean_cluster"], **F64)
  pd2 = ph.pairwise_sq_distances(p)
  np.testing.assert_allclose(pd2, arr("T6.proto_pairwise_sqdist"), **F64)
  iu = np.triu_indices(4, 1)
  np.testing.assert_allclose(np.maximum(0.2 - np.asarray(pd2)[iu], 0).sum(), TV["T6.div_hinge_all_pairs_delta0.2"], **F64)
  np.testing.assert_allclose(ph.diversity_hinge(p, identity, 1.0), TV["T6.div_hinge_within_class_delta1.0_mean"], **F64)
  np.testing.assert_allclose(ph.diversity_hinge(p, ph.class_identity(4, 1), 1.0), 0.0)  # no pairs


def test_region_mean_cluster_against_numpy_on_random_cells(x64):
  rng = np.random.default_rng(11)
  d = rng.uniform(size=(3, 4, 4, 6))
  region = rng.integers(0, 3, size=(3, 4, 4))
  valid = rng.uniform(size=(3, 4, 4)) < 0.6
  owner = np.arange(6) // 2
  values = [d[i][(region[i] == owner[j]) & valid[i]][:, j].min()
            for i in range(3) for j in range(6) if ((region[i] == owner[j]) & valid[i]).any()]
  got = ph.region_mean_cluster(jnp.asarray(d), jnp.asarray(region), jnp.asarray(valid), ph.class_identity(3, 2))
  np.testing.assert_allclose(got, np.mean(values), **F64)


def test_nis_t7(x64):
  nis = influence.normalized_influence(jnp.asarray(arr("T1.sim_log")))
  np.testing.assert_allclose(nis, arr("T7.NIS"), **F64)
  np.testing.assert_allclose(nis.sum(-1), 1.0, **F64)


def test_nis_restricted_to_active_prototypes():
  rng = np.random.default_rng(5)
  s = jnp.asarray(rng.uniform(0, 9, size=(3, 5)), jnp.float32)
  active = np.array([True, False, True, True, False])
  nis = np.asarray(influence.normalized_influence(s, active=jnp.asarray(active)))
  e = np.exp(np.asarray(s, np.float64)[:, active])
  np.testing.assert_allclose(nis[:, active], e / e.sum(1, keepdims=True), rtol=1e-5)
  np.testing.assert_array_equal(nis[:, ~active], 0.0)
  shifted = influence.normalized_influence(s + 3.0, active=jnp.asarray(active))  # shift invariant
  np.testing.assert_allclose(shifted, nis, rtol=1e-5, atol=1e-7)


def test_single_class_is_degenerate_but_finite_t8(x64):
  _, _, _, dmin, _ = t1_forward()
  identity = ph.class_identity(1, 2)
  w = ph.last_layer_init(identity, -0.5)
  labels = jnp.zeros(2, jnp.int32)
  np.testing.assert_allclose(ph.ppnet_logits(dmin[:, :2], w), arr("T8.logits"), **F64)
  terms = jax.jit(ph.ppnet_terms, static_argnums=6)(dmin[:, :2], labels, jnp.ones(2), jnp.ones(1), identity, w, 3.0)
  assert all(np.isfinite(v) for v in terms.values()), terms
  np.testing.assert_allclose(terms["cross_entropy"], TV["T8.cross_entropy"], **F64)
  np.testing.assert_allclose(terms["separation"], TV["T8.separation(all-zero mask)"], **F64)
  assert TV["T8.avg_separation(0/0)"] == "nan" and terms["avg_separation"] == 0.0
  grads = jax.grad(lambda dd: sum(ph.ppnet_terms(dd, labels, jnp.ones(2), jnp.ones(1), identity, w, 3.0).values()))(dmin[:, :2])
  assert np.isfinite(grads).all()
  # An image batch with no valid cell at all: every term 0 and finite.
  two = ph.class_identity(2, 2)
  empty = ph.ppnet_terms(dmin, jnp.asarray([0, 1]), jnp.zeros(2), jnp.ones(2), two,
                         ph.last_layer_init(two, -0.5), 3.0)
  assert all(np.isfinite(v) for v in empty.values())
  assert empty["cluster"] == empty["separation"] == empty["cross_entropy"] == 0.0


def test_tissue_cells_and_patch_losses_t9(x64):
  mask = np.asarray(TV["T9.mask_8x8"])[None]
  index, purity, valid = tissue_cells.cell_labels(mask, (0, 1, 2), 2, 4, 0.6)
  np.testing.assert_array_equal(index[0], arr("T9.patch_label"))
  np.testing.assert_allclose(purity[0], arr("T9.purity"), **F64)
  np.testing.assert_array_equal(valid[0], arr("T9.valid(purity>=0.6)"))
  z, p = jnp.asarray(nhwc("T9.x")), jnp.asarray(protos("T9.p"))
  d = pe.l2_distances(z, p)
  np.testing.assert_allclose(d[0], np.transpose(arr("T9.dist"), (1, 2, 0)), **F64)
  identity = ph.class_identity(3, 2)
  w = ph.last_layer_init(identity, -0.5)
  cells = d.reshape(-1, 6)
  np.testing.assert_allclose(ph.ppnet_logits(cells, w).reshape(2, 2, 3), arr("T9.patch_logits[2,2,T]"), **F64)
  terms = ph.ppnet_terms(cells, index.reshape(-1), valid.reshape(-1), jnp.ones(3), identity, w, 3.0)
  np.testing.assert_allclose(terms["cluster"], TV["T9.patch_cluster"], **F64)
  np.testing.assert_allclose(terms["separation"], TV["T9.patch_separation"], **F64)
  np.testing.assert_allclose(terms["cross_entropy"], TV["T9.patch_CE_mean_valid"], **F64)


def test_background_cells_are_invalid_and_weights_inverse_frequency():
  labels = np.zeros((1, 8, 8), np.uint8)
  labels[0, :4, :4] = 1
  labels[0, :4, 4:] = 3
  labels[0, 4:, :4] = 1
  index, _, valid = tissue_cells.cell_labels(labels, (1, 2, 3), 2, 4, 0.75)
  np.testing.assert_array_equal(valid[0], [[True, True], [True, False]])
  np.testing.assert_array_equal(index[0][np.asarray(valid[0])], [0, 2, 0])
  weights, counts = tissue_cells.class_weights(index, valid, 3)
  np.testing.assert_array_equal(counts, [2, 0, 1])
  np.testing.assert_allclose(weights, [3 / (3 * 2), 0.0, 3 / (3 * 1)])


def test_per_class_purity_prefers_the_thinner_structure():
  labels = np.ones((1, 4, 8), np.uint8)  # two 4x4 cells of fat
  labels[0, 1, :4] = 3  # cell 0: 25 % vessel, 75 % fat
  labels[0, :2, 4:] = 2  # cell 1: 50 % FGT
  labels = np.concatenate([labels, labels], axis=1)  # 8x8, 2x2 cells
  index, purity, valid = tissue_cells.cell_labels(labels, (1, 2, 3), 2, 4, (0.75, 0.5, 0.25))
  np.testing.assert_array_equal(valid[0], True)
  np.testing.assert_array_equal(index[0, 0], [2, 1])  # vessel (thr 0.25) beats fat (thr 0.75)
  np.testing.assert_allclose(purity[0, 0], [0.25, 0.5])
  index, _, valid = tissue_cells.cell_labels(labels, (1, 2, 3), 2, 4, 0.75)
  np.testing.assert_array_equal(valid[0, 0], [True, False])  # one threshold: majority rule
  np.testing.assert_array_equal(index[0, 0, 0], 0)


def test_distance_kernel_is_one_jitted_matmul():
  z, p = jnp.zeros((2, 5, 5, 8)), jnp.zeros((6, 1, 1, 8))
  assert hasattr(pe.l2_distances, "lower")  # a jax.jit-compiled function
  jaxpr = str(jax.make_jaxpr(pe.l2_distances)(z, p))
  assert jaxpr.count("dot_general") == 1 and "while" not in jaxpr and "scan" not in jaxpr
  # One matmul over the whole batch, prototypes shared: equals per-image calls.
  z = jnp.asarray(np.random.default_rng(0).uniform(size=(3, 4, 4, 8)), jnp.float32)
  p = jnp.asarray(np.random.default_rng(1).uniform(size=(6, 1, 1, 8)), jnp.float32)
  each = jnp.concatenate([pe.l2_distances(z[i:i + 1], p) for i in range(3)])
  np.testing.assert_array_equal(pe.l2_distances(z, p), each)
