"""Explains generated images with one trained prototype head: NIS, ρ, faithfulness F at the headline
window and over window sizes, the controls (tissue-matched random prototypes, deletion against
tissue-matched random windows, tissue firing) and F along the denoising trajectory.

Output arrays follow ARCHITECTURE.md's `DIR/explain/<head>.npz` schema.
"""

import dataclasses
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from mrixai_jax import batched
from mrixai_jax.explain import deletion
from mrixai_jax.explain import null_prototypes
from mrixai_jax.explain import tissue_firing
from mrixai_jax.explain import scoring as fa
from mrixai_jax.explain.influence import normalized_influence
from mrixai_jax.models import proto_engine as pe
from mrixai_jax.models import prototypes as pm
from mrixai_jax.training import feature_cache

MIN_WINDOW = 2  # px: the smallest window of F(L)


class HeadExplainer:
  """A trained head with its push record; `model, params` from `training.heads_task.load`."""

  def __init__(self, model: pm.ProtoModel, params: dict, record: dict, batch_size: int):
    self.model, self.params, self.record = model, params, record
    self.batch_size = pm.inference_batch(model, batch_size)
    # NIS runs over the prototypes in use: ProtoPool prototypes in no slot are zero vectors without
    # a training source and reach no logit, so they get NIS 0 (all prototypes for ProtoPNet/EPPNet).
    self.active = pm.active_prototypes(model, params)
    def pooled(p, z):
      out = pm.pooled_from_distances(model, pe.l2_distances(z, p["prototypes"]))
      return {"pooled_similarity": out["pooled_similarity"], "argmin": out["argmin"]}

    self._outputs = jax.jit(lambda p, x: pooled(p, pm.features(model, p, x)))
    self._trunk_outputs = jax.jit(lambda p, t: pooled(p, pm.add_on_features(p, t)))
    self.add_on = jax.jit(pm.add_on_features)

  def outputs(self, images) -> dict:
    """`pooled_similarity [N, P]` and flat `argmin [N, P]` of `images: [N, S, S, 1]`."""
    return batched.host_map(lambda x: self._outputs(self.params, jnp.asarray(x)), (images,), self.batch_size,
                            "explain")

  def trunk_outputs(self, trunk) -> dict:
    """`outputs` of the images whose backbone features are `trunk: [N, n, n, C]`."""
    return batched.host_map(lambda t: self._trunk_outputs(self.params, jnp.asarray(t)), (trunk,), self.batch_size,
                            "explain")

  def trunk_features(self, image_sets: dict) -> dict:
    """Backbone features `{name: [N, n, n, C]}` of `image_sets: {name: [N, S, S, 1]}`, computed once
    while the trunk's params and the images stay the same (the seeds of a frozen trunk:
    `feature_cache.compute_or_reuse` over their concatenation)."""
    names = [name for name, images in image_sets.items() if images is not None]
    images = np.concatenate([image_sets[name] for name in names])
    trunk = feature_cache.compute_or_reuse(self.model, self.params["backbone"], images, self.batch_size, "explain")
    bounds = np.cumsum([0] + [len(image_sets[name]) for name in names])
    return {name: trunk[lo:hi] for name, lo, hi in zip(names, bounds[:-1], bounds[1:])}

  def cell_corners(self, cells_hw, size: int):
    """`[..., 4]` L×L windows centred on feature cells `cells_hw: [..., 2]` (h, w)."""
    image_hw = (self.model.image_size,) * 2
    return np.asarray(fa.cell_corners(cells_hw, float(self.record["start"]), float(self.record["jump"]), size,
                                      image_hw))

  def firing_corners(self, argmin, size: int):
    """`[N, P, 4]` L×L windows centred on the cell where each prototype fires."""
    return self.cell_corners(pm.firing_cells(self.model, jnp.asarray(argmin)), size)

  def source_patches(self, train_images, image_index, centers, size: int):
    """`[P, L, L]` training windows centred on the push cells (zeros where no source: ρ = 0)."""
    found = np.asarray(image_index) >= 0
    images = np.asarray(train_images)[np.where(found, image_index, 0), ..., 0]
    corners = np.asarray(fa.window_corners(np.asarray(centers), size, images.shape[1:3]))
    patches = np.asarray(fa.extract_windows(images, corners[:, None], size))[:, 0]
    return np.where(found[:, None, None], patches, 0.0), corners

  def faithfulness(self, images, outputs, source_patches):
    """`(nis [N, P], rho [N, P], F [N], firing corners [N, P, 4])` for windows of the sources' size."""
    size = source_patches.shape[-1]
    nis = np.asarray(normalized_influence(jnp.asarray(outputs["pooled_similarity"]), active=self.active))
    corners = self.firing_corners(outputs["argmin"], size)
    rho = np.asarray(fa.prototype_correlations(images[..., 0], corners, source_patches))
    return nis, rho, np.asarray(fa.faithfulness(nis, rho)), corners


@dataclasses.dataclass(frozen=True)
class Images:
  """What one head is explained on. samples: `[N, S, S, 1]` in [-1, 1]; labels: `[N, S, S]` their
  conditioning masks (label map); trajectory_x0: `[N, K, S, S, 1]` (x̂0 at the captured steps
  `trajectory_steps [K]`) or None; train_images: the training split `[M, S, S, 1]` the prototypes
  were pushed from; null_pool: training images the null control's prototypes are drawn from."""
  samples: np.ndarray
  labels: np.ndarray
  trajectory_x0: Optional[np.ndarray]
  trajectory_steps: Optional[np.ndarray]
  train_images: np.ndarray
  null_pool: null_prototypes.Pool


def window_sizes(explainer: HeadExplainer, image_size: int, explain_config) -> tuple:
  """`(L, L_alt)`: `explain.window` (0: one feature cell's stride) and `explain.window_alt` (0: 2 L)."""
  window = int(explain_config.window) or int(explainer.record["jump"])
  return window, min(int(explain_config.window_alt) or 2 * window, image_size)


def window_list(window: int, image_size: int, explain_config) -> tuple:
  """The L of F(L), ascending: `explain.windows`, or () -> L/2, L, 2 L, 4 L of the headline
  `window`, each within `MIN_WINDOW`..`image_size` (a 1-pixel window has no correlation)."""
  sizes = [int(v) for v in explain_config.windows] or [window // 2, window, 2 * window, 4 * window]
  return tuple(sorted({min(max(v, MIN_WINDOW), image_size) for v in sizes}))


def score(explainer: HeadExplainer, images, train_images, window: int, trunk=None) -> dict:
  """F of `images: [N, S, S, 1]` with L = `window`: arrays `nis, rho [N, P]`, `faithfulness [N]`,
  `firing_window [N, P, 4]`, `source_window [P, 4]`, `source_patch [P, L, L]`, and the head's
  `outputs` (pooled similarity, argmin); `trunk`: the images' backbone features, when known."""
  record = explainer.record
  outputs = explainer.outputs(images) if trunk is None else explainer.trunk_outputs(trunk)
  patches, source_corners = explainer.source_patches(train_images, record["image_index"], record["center"], window)
  nis, rho, f, firing = explainer.faithfulness(images, outputs, patches)
  return {"nis": nis, "rho": rho, "faithfulness": f, "firing_window": firing, "source_window": source_corners,
          "source_patch": patches.astype(np.float32), "outputs": outputs}


def _faithfulness_at(explainer: HeadExplainer, images, outputs, train_images, window: int):
  """F `[N]` of `images` (head outputs `outputs`) with windows of `window` px."""
  record = explainer.record
  patches, _ = explainer.source_patches(train_images, record["image_index"], record["center"], window)
  return explainer.faithfulness(images, outputs, patches)[2]


def null_control(explainer: HeadExplainer, images: Images, trunk: dict, window: int, explain_config) -> dict:
  """F under `explain.null_draws` draws of tissue-matched random prototypes (`null_prototypes`):
  `faithfulness_null_draws [D]` (mean over the images per draw) and `faithfulness_randomized [N]`
  (mean over the draws per image). trunk: backbone features of the `samples` and the `pool`."""
  model, params, record, pool = explainer.model, explainer.params, explainer.record, images.null_pool
  pool_z = np.asarray(explainer.add_on(params, jnp.asarray(trunk["pool"])))
  candidates = null_prototypes.candidate_cells(model, pool, window, float(explain_config.null_min_window_std),
                                               float(record["start"]), float(record["jump"]))
  columns = tissue_firing.tissue_columns(model, record["tissue_class"])
  draws = null_prototypes.draw(np.random.default_rng(int(explain_config.seed)), candidates, columns,
                               int(explain_config.null_draws))
  sample_z = np.asarray(explainer.add_on(params, jnp.asarray(trunk["samples"])))
  f = null_prototypes.null_faithfulness(model, pool_z, pool, sample_z, images.samples, draws,
                                        np.asarray(explainer.active), record, window)  # [D, N]
  return {"faithfulness_null_draws": f.mean(axis=1), "faithfulness_randomized": f.mean(axis=0)}


def deletion_control(explainer: HeadExplainer, images: Images, nis, firing, explain_config) -> dict:
  """`deletion_drop_top [N]` and `deletion_drop_random [N]`: blurring the windows where each image's
  `explain.deletion_top_k` prototypes fire, against `explain.deletion_random_windows` deletions of
  windows of the same size on cells of the same tissues (`deletion.matched_random_cells`)."""
  model = explainer.model
  top = deletion.top_prototypes(nis, int(explain_config.deletion_top_k))  # [N, k]
  rows = np.arange(len(top))[:, None]
  columns = tissue_firing.tissue_columns(model, explainer.record["tissue_class"])[top]  # [N, k]
  qualifies = tissue_firing.qualifying_cells(model, images.labels).transpose(0, 2, 1)  # [N, T, n·n]
  allowed = np.where(columns[..., None] >= 0, qualifies[rows, np.maximum(columns, 0)], False)
  cells = deletion.matched_random_cells(np.random.default_rng(int(explain_config.seed)), allowed,
                                        int(explain_config.deletion_random_windows))  # [R, N, k]
  size = int(firing[0, 0, 2] - firing[0, 0, 0])
  random_corners = explainer.cell_corners(np.stack([cells // model.cells, cells % model.cells], axis=-1), size)
  drops = deletion.similarity_drops(lambda x: explainer.outputs(x)["pooled_similarity"], images.samples, top,
                                    firing[rows, top], random_corners, float(explain_config.deletion_blur_sigma))
  return {"deletion_drop_top": drops["drop_top"], "deletion_drop_random": drops["drop_random"]}


def trajectory_frames(images: Images):
  """x̂0 of every image at every captured step, `[N·K, S, S, 1]` (image-major); None without."""
  x0 = images.trajectory_x0
  return None if x0 is None else x0.reshape((-1,) + x0.shape[2:])


def emergence_arrays(explainer: HeadExplainer, images: Images, trunk: dict, source_patches) -> dict:
  """Along the trajectory: `emergence_nis [N, K, P]` and `emergence_faithfulness [N, K]` (F of x̂0
  with the headline window), `trajectory_steps [K]`. trunk: backbone features of the `frames`."""
  n, k = images.trajectory_x0.shape[:2]
  nis, _, f, _ = explainer.faithfulness(trajectory_frames(images), explainer.trunk_outputs(trunk["frames"]),
                                        source_patches)
  return {"emergence_nis": nis.reshape(n, k, -1), "emergence_faithfulness": f.reshape(n, k),
          "trajectory_steps": np.asarray(images.trajectory_steps)}


def explain(explainer: HeadExplainer, images: Images, trunk: dict, explain_config) -> dict:
  """Every measurement of one head on generated images: the arrays of `<head>/seed<k>.npz` —
  `score`'s at the headline window, F(L) (`windows [W]`, `faithfulness_by_window [W, N]`), F at
  `window_alt`, the null, deletion and tissue-firing controls (`tissue_hit`, `tissue_chance [N, P]`:
  `tissue_firing.hits_at`) and, with a trajectory, `emergence_arrays`. trunk: backbone features of
  the `samples`, the null `pool` and the trajectory `frames` (`HeadExplainer.trunk_features`)."""
  record, samples = explainer.record, images.samples
  window, window_alt = window_sizes(explainer, samples.shape[1], explain_config)
  scored = score(explainer, samples, images.train_images, window, trunk["samples"])
  outputs = scored.pop("outputs")
  windows = window_list(window, samples.shape[1], explain_config)
  f_at = {size: _faithfulness_at(explainer, samples, outputs, images.train_images, size)
          for size in set(windows) | {window_alt} if size != window}
  f_at[window] = scored["faithfulness"]  # the headline window's F, computed by `score`
  hit, chance = tissue_firing.hits_at(explainer.model, outputs["argmin"], images.labels, record["tissue_class"])
  arrays = dict(scored, windows=np.asarray(windows, np.int64), faithfulness_by_window=np.stack([f_at[L] for L in windows]),
                faithfulness_window_alt=f_at[window_alt], source_image_id=record["image_index"],
                prototype_class=record["tissue_class"], tissue_hit=hit, tissue_chance=chance,
                window=np.int64(window), window_alt=np.int64(window_alt),
                **null_control(explainer, images, trunk, window, explain_config),
                **deletion_control(explainer, images, scored["nis"], scored["firing_window"], explain_config))
  if images.trajectory_x0 is not None:
    arrays.update(emergence_arrays(explainer, images, trunk, scored["source_patch"]))
  return arrays
