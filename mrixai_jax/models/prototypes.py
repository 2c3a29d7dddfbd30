"""Prototype networks on one engine: backbone → add-on (sigmoid) → prototype layer → head.

Heads (`heads.kind`): `ppnet` (ProtoPNet, prototypes.md §2), `eppnet` (EPPNet; its mean-cluster
and diversity terms are a *reconstruction*, §3.2 — the paper's exact equations were not
available) and `protopool` (ProtoPool, §4: a shared pool with Gumbel-softmax slot assignment).

Training follows the tissue-class adaptation (§6.2 A): the classes are the label-map tissues
`heads.tissue_classes`, and every loss is computed on labelled feature cells (`cell_loss`). The
image-level forward used for explanations (`image_outputs`) is the original one. Two additions to
§6.2 A, both for localisation: per-cell terms are class-balanced (inverse-frequency weights on all
of them, not only the CE), and background cells are pushed away from every prototype
(`heads.loss.background_separation`); purity thresholds may differ per tissue (`purity_per_class`).

Params are a plain dict: `backbone` (flax tree), `add_on` (list of `{kernel [Cin, Cout], bias}`
1×1 convs), `prototypes [P, 1, 1, D]`, `last_layer [T, P]` (ProtoPool `[T, T·K]`) and, for
ProtoPool, `presence [T, P, K]` (the raw assignment logits Q).
"""

import dataclasses
import functools
import math
from typing import Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from mrixai_jax import cpu_steps
from mrixai_jax.models import proto_engine as pe
from mrixai_jax.models import proto_heads as ph
from mrixai_jax.models import receptive_field as rf
from mrixai_jax.models import small_cnn
from mrixai_jax.models import tissue_cells
from mrixai_jax.models import vgg

KINDS = ("ppnet", "eppnet", "protopool")


class _VGGTrunk(nn.Module):
  """VGG16 features at one layer (the ImageNet trunk of the LPIPS port)."""
  layer: str

  @nn.compact
  def __call__(self, x):
    return vgg.VGG16(last_layer=self.layer, outputs=(self.layer,), name="vgg")(x)[self.layer]


@dataclasses.dataclass(frozen=True)
class ProtoModel:
  """Static description of a prototype network (everything that is not a parameter)."""

  kind: str
  backbone_name: str
  backbone: nn.Module  # images [N, S, S, 1] in [-1, 1] -> features [N, n, n, C]
  backbone_channels: int
  rf: rf.RFInfo  # receptive field of a prototype-layer cell
  image_size: int
  tissue_classes: Tuple[int, ...]
  num_prototypes: int
  prototypes_per_class: int  # ppnet/eppnet
  num_slots: int  # protopool K
  prototype_dim: int
  add_on_layers: int  # 2: conv-ReLU-conv-sigmoid (ProtoPNet "regular"); 1: conv-sigmoid (ProtoPool)
  purity_threshold: Tuple[float, ...]  # one per tissue class
  background_purity: float  # cells with this much non-tissue are background
  incorrect_strength: float
  tau: float

  @property
  def num_classes(self) -> int:
    return len(self.tissue_classes)

  @property
  def cells(self) -> int:
    return self.rf.n

  @property
  def cell_size(self) -> int:
    return int(self.rf.jump)

  @property
  def identity(self):
    """Class identity `[P, T]` of prototypes (ppnet/eppnet) or of slots `[T·K, T]` (protopool)."""
    per = self.num_slots if self.kind == "protopool" else self.prototypes_per_class
    return ph.class_identity(self.num_classes, per)

  @property
  def max_distance(self) -> float:
    return pe.max_distance((self.num_prototypes, 1, 1, self.prototype_dim))


def _vgg_layers(layer: str) -> list:
  vgg.check_layer(layer)
  out = []
  for name in vgg.LAYER_NAMES[:vgg.LAYER_NAMES.index(layer) + 1]:
    out.append((3, 1, 1))
    if name in vgg.POOL_AFTER and name != layer:
      out.append((2, 2, 0))
  return out


def _purity(heads, num_classes: int) -> Tuple[float, ...]:
  per_class = tuple(float(v) for v in heads.purity_per_class)
  if per_class and len(per_class) != num_classes:
    raise ValueError(f"heads.purity_per_class has {len(per_class)} entries for {num_classes} tissue classes")
  return per_class or (float(heads.purity_threshold),) * num_classes


def build_model(heads, image_size: int) -> ProtoModel:
  """The `ProtoModel` described by the `heads` config section for `image_size`² inputs."""
  if heads.kind not in KINDS:
    raise ValueError(f"heads.kind must be one of {KINDS}, got {heads.kind!r}")
  if heads.backbone == "vgg16":
    backbone, layers = _VGGTrunk(heads.vgg_layer), _vgg_layers(heads.vgg_layer)
    channels = dict(vgg.LAYERS)[heads.vgg_layer]
  elif heads.backbone == "small_cnn":
    widths = tuple(heads.small_cnn_channels)
    backbone, layers, channels = small_cnn.SmallCNN(widths), small_cnn.layers(widths), widths[-1]
  else:
    raise ValueError(f"heads.backbone must be 'vgg16' or 'small_cnn', got {heads.backbone!r}")
  info = rf.receptive_field(image_size, layers)
  if info.jump != int(info.jump) or info.n * info.jump > image_size:
    raise ValueError(f"{heads.backbone}: {info.n} cells of {info.jump} px do not tile {image_size} px")
  tissues = tuple(int(t) for t in heads.tissue_classes)
  per_class = int(heads.prototypes_per_class)
  if per_class < 1 or not tissues:
    raise ValueError(f"heads: need prototypes_per_class >= 1 and at least one tissue class, got {per_class}, "
                     f"{tissues}")
  if heads.kind == "protopool":
    pool = int(heads.protopool.num_prototypes) or per_class * len(tissues)
    slots, add_on = int(heads.protopool.num_slots), 1
    if not 1 <= slots <= pool:
      raise ValueError(f"heads.protopool.num_slots must be in 1..{pool} (the pool size), got {slots}")
  else:
    pool, slots, add_on = per_class * len(tissues), 0, 2
  return ProtoModel(kind=heads.kind, backbone_name=heads.backbone, backbone=backbone,
                    backbone_channels=channels, rf=info, image_size=image_size, tissue_classes=tissues,
                    num_prototypes=pool, prototypes_per_class=per_class, num_slots=slots,
                    prototype_dim=int(heads.prototype_dim), add_on_layers=add_on,
                    purity_threshold=_purity(heads, len(tissues)),
                    background_purity=float(heads.purity_threshold),
                    incorrect_strength=float(heads.incorrect_strength), tau=float(heads.protopool.tau))


def init_params(model: ProtoModel, key, backbone=None) -> dict:
  """Fresh parameters: `backbone` params when given (e.g. `pretrained.lpips_vgg.pretrained_backbone`),
  else a random backbone; Kaiming fan-out add-on convs with zero bias, Uniform[0, 1) prototypes,
  1/−0.5 (ProtoPool 1/0) last layer and Xavier-normal assignment logits std sqrt(2/(P·K + T·K))."""
  k_backbone, k_add, k_proto, k_presence = jax.random.split(key, 4)
  size = model.image_size
  if backbone is None:
    backbone = model.backbone.init(k_backbone, jnp.zeros((1, size, size, 1)))["params"]
  widths = [model.backbone_channels] + [model.prototype_dim] * model.add_on_layers
  add_on = []
  for k, (c_in, c_out) in zip(jax.random.split(k_add, model.add_on_layers), zip(widths, widths[1:])):
    add_on.append({"kernel": math.sqrt(2.0 / c_out) * jax.random.normal(k, (c_in, c_out)),
                   "bias": jnp.zeros((c_out,))})
  params = {
      "backbone": backbone,
      "add_on": add_on,
      "prototypes": jax.random.uniform(k_proto, (model.num_prototypes, 1, 1, model.prototype_dim)),
  }
  if model.kind == "protopool":
    c, p, k = model.num_classes, model.num_prototypes, model.num_slots
    params["presence"] = math.sqrt(2.0 / (p * k + c * k)) * jax.random.normal(k_presence, (c, p, k))
    params["last_layer"] = ph.last_layer_init(model.identity, 0.0)
  else:
    params["last_layer"] = ph.last_layer_init(model.identity, model.incorrect_strength)
  return params


def inference_batch(model: ProtoModel, batch_size: int) -> int:
  """Images per call of a forward pass outside training (push, explanations, the feature cache):
  `batch_size`, on CPU at most `cpu_steps.vgg16_images` at the model's image size, where
  smaller calls keep the activations in cache (default heads at 256², `image_outputs` of 16
  images: 2.34 s in one call, 1.85 s two at a time)."""
  return min(batch_size, cpu_steps.vgg16_rows(model.image_size, model.image_size, batch_size))


def features(model: ProtoModel, params: dict, images):
  """Prototype-space features `Z: [N, n, n, D]` in (0, 1) of `images: [N, S, S, 1]` in [-1, 1]."""
  return add_on_features(params, backbone_features(model, params, images))


def backbone_features(model: ProtoModel, params: dict, images):
  """Trunk output `[N, n, n, C]` (C = `model.backbone_channels`) of `images: [N, S, S, 1]` in [-1, 1]."""
  return model.backbone.apply({"params": params["backbone"]}, images)


def add_on_features(params: dict, trunk):
  """The add-on 1×1 convs (ReLU between, sigmoid last): trunk `[N, n, n, C]` -> `Z: [N, n, n, D]`."""
  x = trunk
  for i, layer in enumerate(params["add_on"]):
    x = jnp.einsum("nhwc,cd->nhwd", x, layer["kernel"]) + layer["bias"]
    x = jax.nn.sigmoid(x) if i == len(params["add_on"]) - 1 else jax.nn.relu(x)
  return x


def hard_assignment(presence):
  """One-hot slot assignment `[T, P, K]` = arg-max of Q over the pool (the s → ∞ limit used at
  evaluation; the original samples s = 1e4 with noise, which equals this except near-ties)."""
  return jax.nn.one_hot(jnp.argmax(presence, axis=1), presence.shape[1], axis=1)


def image_outputs(model: ProtoModel, params: dict, images) -> dict:
  """The original image-level forward.

  Returns `distances [N, n, n, P]`, `min_distances [N, P]`, `argmin [N, P]` (flat row-major
  cell of the minimum), `avg_distances [N, P]`, `logits [N, T]` and `pooled_similarity [N, P]`
  (ppnet/eppnet sim(dmin); protopool sim(dmin) − sim(davg)), the input of NIS.
  """
  d = pe.l2_distances(features(model, params, images), params["prototypes"])
  pooled = pooled_from_distances(model, d)
  dmin, davg = pooled["min_distances"], pooled["avg_distances"]
  if model.kind == "protopool":
    logits = ph.protopool_logits(ph.focal_similarity(dmin, davg, hard_assignment(params["presence"])),
                                 params["last_layer"])
  else:
    logits = ph.ppnet_logits(dmin, params["last_layer"])
  return dict(pooled, distances=d, logits=logits)


def pooled_from_distances(model: ProtoModel, distances) -> dict:
  """Per-prototype pooling of `distances: [N, n, n, P]` (any P: it acts on each prototype alone):
  `min_distances`, `argmin` (flat row-major cell of the minimum), `avg_distances` and
  `pooled_similarity` (ppnet/eppnet sim(dmin); protopool sim(dmin) − sim(davg)), each `[N, P]`."""
  dmin, argmin = pe.min_pool(distances)
  davg = pe.avg_pool(distances)
  pooled = pe.log_similarity(dmin)
  if model.kind == "protopool":
    pooled = pooled - pe.log_similarity(davg)
  return {"min_distances": dmin, "argmin": argmin, "avg_distances": davg, "pooled_similarity": pooled}


def pooled_similarity(model: ProtoModel, params: dict, images):
  """Per-prototype pooled similarity `[N, P]` (feed to `explain.influence.normalized_influence`)."""
  return image_outputs(model, params, images)["pooled_similarity"]


def active_prototypes(model: ProtoModel, params: dict):
  """`[P]` bool: prototypes that take part in a logit (all of them, except ProtoPool prototypes
  in no arg-max slot — those are zero vectors after the push)."""
  return jnp.any(prototype_classes(model, params), axis=-1)


def firing_cells(model: ProtoModel, argmin):
  """Flat arg-min indices `[N, P]` -> feature cells `[N, P, 2]` (h, w)."""
  return jnp.stack([argmin // model.cells, argmin % model.cells], axis=-1)


@functools.partial(jax.jit, static_argnums=0)
def cell_targets(model: ProtoModel, labels):
  """Tissue index `[N, n, n]` and validity `[N, n, n]` of every cell of `labels: [N, S, S]`."""
  index, _, valid = tissue_cells.cell_labels(labels, model.tissue_classes, model.cells,
                                             model.cell_size, model.purity_threshold)
  return index, valid


def prototype_classes(model: ProtoModel, params: dict):
  """Tissue classes each prototype may be pushed onto, `[P, T]` bool: its own class (ppnet/eppnet);
  every class with the prototype in one of its arg-max slots (protopool, §4.6)."""
  if model.kind != "protopool":
    return model.identity > 0
  return jnp.any(hard_assignment(params["presence"]) > 0, axis=-1).T


def cell_loss(model: ProtoModel, params: dict, z, labels, class_weight, weights,
              gumbel_scale, key):
  """Training loss on labelled feature cells (§6.2 A) and its metrics.

  z `[B, n, n, D]` (`features` of the batch's images), labels `[B, S, S]` (label map), class_weight
  `[T]` (inverse frequency, on every per-cell term), weights: the `heads.loss` coefficients,
  gumbel_scale: ProtoPool's s for this step, key: its Gumbel draw. Returns `(loss, metrics)`.
  """
  d = pe.l2_distances(z, params["prototypes"])
  index, valid = cell_targets(model, labels)
  background = tissue_cells.background_cells(labels, model.tissue_classes, model.cells, model.cell_size,
                                             model.background_purity).reshape(-1)
  num = d.shape[-1]
  cells_d, cells_y, cells_v = d.reshape(-1, num), index.reshape(-1), valid.reshape(-1)
  w = weights
  if model.kind == "protopool":
    noise = jax.random.gumbel(key, params["presence"].shape, d.dtype)
    q = ph.slot_assignment(params["presence"], gumbel_scale, noise, model.tau)
    avg = jnp.broadcast_to(pe.avg_pool(d)[:, None, None, :], d.shape).reshape(-1, num)
    t = ph.protopool_terms(cells_d, avg, cells_y, cells_v, class_weight, q, params["presence"],
                           params["last_layer"], model.identity, model.max_distance)
    loss = (w.cross_entropy * t["cross_entropy"] + w.cluster * t["cluster"]
            - w.separation * t["separation"] + w.l1 * t["l1"] + w.orthogonality * t["orthogonality"])
    logits = ph.protopool_logits(ph.focal_similarity(cells_d, avg, q), params["last_layer"])
  else:
    t = ph.ppnet_terms(cells_d, cells_y, cells_v, class_weight, model.identity, params["last_layer"],
                       model.max_distance)
    loss = (w.cross_entropy * t["cross_entropy"] - w.separation * t["separation"] + w.l1 * t["l1"])
    if model.kind == "eppnet":  # reconstruction: mean-cluster replaces the cluster cost, plus Div
      t["mean_cluster"] = ph.region_mean_cluster(d, index, valid, model.identity)
      t["diversity"] = ph.diversity_hinge(params["prototypes"], model.identity, w.diversity_delta)
      loss = loss + w.cluster * t["mean_cluster"] + w.diversity * t["diversity"]
    else:
      loss = loss + w.cluster * t["cluster"]
    logits = ph.ppnet_logits(cells_d, params["last_layer"])
  # Beyond the originals: background cells are pushed away from every prototype (a separation term
  # whose "wrong class" is all prototypes), so tissue prototypes do not fire outside the tissue.
  t["background_separation"] = ph.weighted_mean(
      ph.masked_min_trick(cells_d, jnp.ones_like(cells_d), model.max_distance), background)
  loss = loss - w.background_separation * t["background_separation"]
  correct = (jnp.argmax(logits, -1) == cells_y) & cells_v
  t["cell_accuracy"] = jnp.sum(correct) / jnp.maximum(jnp.sum(cells_v), 1)
  t["valid_fraction"] = jnp.mean(cells_v.astype(jnp.float32))
  return loss, t
