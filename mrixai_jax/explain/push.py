"""Push (prototype projection) with provenance (prototypes.md §1.8, §4.6, §6.2 A).

Every prototype is replaced by its nearest training feature patch among the cells it may use (its
own tissue class); the record of where that patch came from (training image, patient, slice,
feature cell, pixel window, distance) is what the faithfulness score and the gallery use.
Batches are visited in dataset order; a later batch wins only with a strictly smaller distance
and ties inside a batch go to the first (image, h, w) in row-major order, as in the original.
"""

import functools
import pathlib

import jax
import jax.numpy as jnp
import numpy as np

from mrixai_jax import atomic
from mrixai_jax import progress
from mrixai_jax.explain import scoring
from mrixai_jax.models import proto_engine as pe
from mrixai_jax.models import prototypes as pm
from mrixai_jax.models import receptive_field as rf


@functools.partial(jax.jit, static_argnames=("patch_hw",))
def _batch_nearest(z, distances, allowed, patch_hw):
  """Per prototype, the smallest allowed distance `[P]`, the flat (b, h, w) index `[P]` of its first
  occurrence and the feature patch there `[P, h1, w1, D]`, all selected on the device.

  The first minimum is found as min(value), then the smallest position holding it: two plain
  reductions, 4x faster on XLA:CPU than `argmin` (a variadic reduction).
  """
  n, h_out, w_out, num = distances.shape
  flat = jnp.where(allowed, distances, jnp.inf).reshape(-1, num)
  value = jnp.min(flat, axis=0)
  positions = jnp.arange(flat.shape[0], dtype=jnp.int32)[:, None]
  index = jnp.min(jnp.where(flat == value, positions, flat.shape[0]), axis=0)
  b, h, w = jnp.unravel_index(index, (n, h_out, w_out))
  size = (1, *patch_hw, z.shape[-1])
  patches = jax.vmap(lambda *at: jax.lax.dynamic_slice(z, (*at, jnp.zeros_like(at[0])), size)[0])(b, h, w)
  return value, index, patches


class NearestPatchSearch:
  """Running nearest-patch search over batches visited in order.

  `update(z, distances, allowed, first_image)` with features `z: [B, H, W, D]`, distances
  `[B, H', W', P]`, allowed `[B, H', W', P]` bool and the dataset index of the batch's first image.
  Results (numpy): `distance [P]` (inf: no candidate), `image [P]` (−1: none), `cell [P, 2]`
  (h, w), `patches [P, h1, w1, D]` (zeros where none, as the original's untouched buffer).
  Only the batch's winners (`[P]` values and indices, `[P, h1, w1, D]` patches) leave the device.
  """

  def __init__(self, prototype_shape):
    num = prototype_shape[0]
    self.prototype_shape = tuple(prototype_shape)
    self.distance = np.full(num, np.inf)
    self.image = np.full(num, -1, np.int64)
    self.cell = np.zeros((num, 2), np.int64)
    self.patches = np.zeros(self.prototype_shape, np.float32)

  def update(self, z, distances, allowed, first_image: int) -> None:
    value, index, patches = jax.device_get(_batch_nearest(z, distances, allowed, self.prototype_shape[1:3]))
    better = value < self.distance  # strict <: the earlier batch wins ties
    b, h, w = np.unravel_index(index[better], distances.shape[:3])
    self.distance[better] = value[better]
    self.image[better] = first_image + b
    self.cell[better] = np.stack([h, w], axis=-1)
    self.patches[better] = patches[better]


def push_prototypes(model, params: dict, split: dict, batch_size: int, trunk=None):
  """Projects every prototype onto its nearest allowed training cell; returns `(params, record)`.

  model/params: a `models.prototypes` network; split: `image [N, S, S, 1]`, `labels [N, S, S]`,
  `patient_id [N]`, `slice_index [N]` (un-augmented training set, visited in order). A prototype
  may only take a valid cell of its own tissue (`prototype_classes`); one that finds none becomes
  the zero vector, as in the original. `record` is described in `make_record`.
  trunk: `[N, n, n, C]` backbone features of `split["image"]` under these params (heads
  training's feature cache), used instead of running the backbone again; None: from the images.
  """

  allowed_classes = pm.prototype_classes(model, params)  # [P, T]
  inputs = split["image"] if trunk is None else trunk

  @jax.jit
  def batch_maps(x, labels):
    z = pm.features(model, params, x) if trunk is None else pm.add_on_features(params, x)
    d = pe.l2_distances(z, params["prototypes"])
    index, valid = pm.cell_targets(model, labels)
    allowed = valid[..., None] & allowed_classes[:, index].transpose(1, 2, 3, 0)
    return z, d, allowed

  search = NearestPatchSearch(params["prototypes"].shape)
  per_call = batch_size if trunk is not None else pm.inference_batch(model, batch_size)
  for rows in progress.batch_slices(len(inputs), per_call, "push"):
    search.update(*batch_maps(jnp.asarray(inputs[rows]), jnp.asarray(split["labels"][rows])), rows.start)
  new_params = dict(params, prototypes=jnp.asarray(search.patches))
  return new_params, make_record(model, search, split)


def make_record(model, search: NearestPatchSearch, split: dict) -> dict:
  """Provenance of the pushed prototypes, numpy arrays indexed by prototype j:

  `image_index [P]` (row of the training split, −1: no candidate), `patient_id [P]` str,
  `slice_index [P]`, `cell [P, 2]` (h, w), `center [P, 2]` (pixel y, x), `window [P, 4]` (y0, x0,
  y1, x1, end exclusive: the cell-stride window centred on the cell, the default ρ window),
  `rf_window [P, 4]` (the theoretical receptive field, same order), `distance [P]`,
  `tissue_class [P]` (label-map value of the source cell, −1: none), `source_patch [P, L, L]`
  (training pixels of `window`, in [-1, 1]) and scalars `image_size`, `jump`, `start`, `rf`.
  """

  num = len(search.distance)
  size, info = model.image_size, model.rf
  found = search.image >= 0
  rows = np.where(found, search.image, 0)
  labels = np.asarray(split["labels"])[rows]
  index, _ = pm.cell_targets(model, labels)
  index = np.asarray(index)[np.arange(num), search.cell[:, 0], search.cell[:, 1]]
  tissue = np.where(found, np.asarray(model.tissue_classes)[index], -1)
  window = np.array([scoring.cell_window(info, h, w, model.cell_size, size) for h, w in search.cell])
  box = np.array([rf.rf_box(info, h, w, size) for h, w in search.cell])  # (y0, y1, x0, x1)
  images = np.asarray(split["image"])[rows, ..., 0]
  patch = np.stack([images[j, y0:y1, x0:x1] for j, (y0, x0, y1, x1) in enumerate(window)])
  return {
      "image_index": search.image.astype(np.int64),
      "patient_id": np.where(found, np.asarray(split["patient_id"])[rows], ""),
      "slice_index": np.where(found, np.asarray(split["slice_index"])[rows], -1).astype(np.int64),
      "cell": search.cell.astype(np.int64),
      "center": np.array([rf.cell_center(info, h, w) for h, w in search.cell], np.float64),
      "window": window.astype(np.int64),
      "rf_window": box[:, [0, 2, 1, 3]].astype(np.int64),
      "distance": search.distance.astype(np.float64),
      "tissue_class": tissue.astype(np.int64),
      "source_patch": np.where(found[:, None, None], patch, 0.0).astype(np.float32),
      "image_size": np.int64(size), "jump": np.float64(info.jump), "start": np.float64(info.start),
      "rf": np.float64(info.r),
  }


def save_record(directory, record: dict) -> None:
  """Writes `push.npz` (all arrays) and `push.json` (per-prototype provenance) atomically."""

  directory = pathlib.Path(directory)
  with atomic.atomic_path(directory / "push.npz", suffix=".npz") as tmp:
    np.savez(tmp, **record)
  rows = []
  for j in range(len(record["distance"])):
    rows.append({
        "prototype": j, "tissue_class": int(record["tissue_class"][j]),
        "image_index": int(record["image_index"][j]), "patient_id": str(record["patient_id"][j]),
        "slice_index": int(record["slice_index"][j]), "cell": [int(v) for v in record["cell"][j]],
        "window_y0_x0_y1_x1": [int(v) for v in record["window"][j]],
        "rf_window_y0_x0_y1_x1": [int(v) for v in record["rf_window"][j]],
        "distance": float(record["distance"][j]) if np.isfinite(record["distance"][j]) else None,
    })
  meta = {key: float(record[key]) for key in ("image_size", "jump", "start", "rf")}
  atomic.write_json(directory / "push.json", {"geometry": meta, "prototypes": rows})


def load_record(directory) -> dict:
  """Reads the arrays written by `save_record`; FileNotFoundError names the missing file."""

  path = pathlib.Path(directory) / "push.npz"
  if not path.exists():
    raise FileNotFoundError(f"no push record {path} (train the head first: python train.py --config.task=heads)")
  with np.load(path) as data:
    return {key: data[key] for key in data.files}


def save_gallery(path, record: dict, images, tissue_names=None) -> None:
  """Prototype gallery PNG: per prototype, its training slice with the source window (solid) and
  receptive field (dashed), and a zoom on the window's surroundings.

  images: the training split's `image [N, S, S, 1]`; tissue_names: optional {label: name}.
  """
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  from matplotlib.patches import Rectangle  # pylint: disable=g-import-not-at-top

  tissues = record["tissue_class"]
  groups = [np.nonzero(tissues == t)[0] for t in np.unique(tissues)]  # one row block per tissue
  cols = min(max(len(g) for g in groups), 6)
  places = [(row + i // cols, i % cols, j) for row, g in zip(np.cumsum([0] + [-(-len(g) // cols) for g in groups]),
                                                           groups) for i, j in enumerate(g)]
  rows = max(r for r, _, _ in places) + 1
  fig, axes = plt.subplots(rows, 2 * cols, figsize=(2.0 * 2 * cols, 2.2 * rows), squeeze=False)
  colors = {1: "tab:orange", 2: "tab:green", 3: "tab:red"}
  size = int(record["image_size"])
  for ax in axes.ravel():
    ax.axis("off")
  for row, col, j in places:
    full, zoom = axes[row, 2 * col], axes[row, 2 * col + 1]
    tissue, image_index = int(record["tissue_class"][j]), int(record["image_index"][j])
    name = (tissue_names or {}).get(tissue, f"class {tissue}")
    if image_index < 0:
      full.set_title(f"p{j}: no source", fontsize=7)
      continue
    slice_ = np.asarray(images[image_index])[..., 0]
    y0, x0, y1, x1 = (int(v) for v in record["window"][j])
    ry0, rx0, ry1, rx1 = (int(v) for v in record["rf_window"][j])
    color = colors.get(tissue, "tab:blue")
    full.imshow(slice_, cmap="gray", vmin=-1, vmax=1)
    full.add_patch(Rectangle((rx0 - 0.5, ry0 - 0.5), rx1 - rx0, ry1 - ry0, fill=False, ec=color, ls="--", lw=0.6))
    full.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, ec=color, lw=1.2))
    full.set_title(f"p{j} {name}\n{record['patient_id'][j]} s{int(record['slice_index'][j])}", fontsize=6)
    margin = max(2 * (y1 - y0), 8)
    zy0, zx0 = max(y0 - margin, 0), max(x0 - margin, 0)
    zy1, zx1 = min(y1 + margin, size), min(x1 + margin, size)
    zoom.imshow(slice_[zy0:zy1, zx0:zx1], cmap="gray", vmin=-1, vmax=1, interpolation="nearest")
    zoom.add_patch(Rectangle((x0 - zx0 - 0.5, y0 - zy0 - 0.5), x1 - x0, y1 - y0, fill=False, ec=color, lw=1.2))
    zoom.set_title(f"d={float(record['distance'][j]):.3g}", fontsize=6)
  fig.suptitle("Prototype sources (solid: source window; dashed: receptive field)", fontsize=8)
  atomic.save_figure(fig, path)
