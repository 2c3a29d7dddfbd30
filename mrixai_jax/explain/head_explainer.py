"""Explains generated images with one trained prototype head: NIS, ρ, faithfulness F, and the
controls (second window size, randomised prototypes, deletion) plus emergence along the trajectory.

Output arrays follow ARCHITECTURE.md's `DIR/explain/<head>.npz` schema.
"""

import jax
import jax.numpy as jnp
import numpy as np

from mrixai_jax import batched
from mrixai_jax.explain import deletion
from mrixai_jax.explain import scoring as fa
from mrixai_jax.explain.influence import normalized_influence
from mrixai_jax.models import prototypes as pm


class HeadExplainer:
  """A trained head with its push record; `model, params` from `training.heads_task.load`."""

  def __init__(self, model: pm.ProtoModel, params: dict, record: dict, batch_size: int):
    self.model, self.params, self.record = model, params, record
    self.batch_size = pm.inference_batch(model, batch_size)
    # NIS runs over the prototypes in use: ProtoPool prototypes in no slot are zero vectors without
    # a training source and reach no logit, so they get NIS 0 (all prototypes for ProtoPNet/EPPNet).
    self.active = pm.active_prototypes(model, params)
    self._outputs = jax.jit(lambda p, x: {
        k: v for k, v in pm.image_outputs(model, p, x).items() if k in ("pooled_similarity", "argmin")})
    self._features = jax.jit(lambda p, x: {"z": pm.features(model, p, x)})

  def outputs(self, images, params=None) -> dict:
    """`pooled_similarity [N, P]` and flat `argmin [N, P]` of `images: [N, S, S, 1]`."""
    params = self.params if params is None else params
    return batched.host_map(lambda x: self._outputs(params, jnp.asarray(x)), (images,), self.batch_size, "explain")

  def firing_corners(self, argmin, size: int, image_hw):
    """`[N, P, 4]` L×L windows centred on the cell where each prototype fires."""
    cells = pm.firing_cells(self.model, jnp.asarray(argmin))
    centers = fa.cell_centers(cells, float(self.record["start"]), float(self.record["jump"]))
    return np.asarray(fa.window_corners(centers, size, image_hw))

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
    corners = self.firing_corners(outputs["argmin"], size, images.shape[1:3])
    rho = np.asarray(fa.prototype_correlations(images[..., 0], corners, source_patches))
    return nis, rho, np.asarray(fa.faithfulness(nis, rho)), corners

  def randomized_prototypes(self, train_images, seed: int):
    """Params whose prototypes are feature vectors of random training cells, with their centres."""
    rng = np.random.default_rng(seed)
    num = self.model.num_prototypes
    rows = rng.integers(0, len(train_images), size=num)
    cells = rng.integers(0, self.model.cells, size=(num, 2))
    z = batched.host_map(lambda x: self._features(self.params, jnp.asarray(x)), (np.asarray(train_images)[rows],),
                         self.batch_size, "explain")["z"]
    vectors = z[np.arange(num), cells[:, 0], cells[:, 1]]
    params = dict(self.params, prototypes=jnp.asarray(vectors)[:, None, None, :])
    centers = np.asarray(fa.cell_centers(cells, float(self.record["start"]), float(self.record["jump"])))
    return params, rows, centers


def window_sizes(explainer: HeadExplainer, image_size: int, explain_config) -> tuple:
  """`(L, L_alt)`: `explain.window` (0: one feature cell's stride) and `explain.window_alt` (0: 2 L)."""
  window = int(explain_config.window) or int(explainer.record["jump"])
  return window, min(int(explain_config.window_alt) or 2 * window, image_size)


def score(explainer: HeadExplainer, images, train_images, window: int) -> dict:
  """F of `images: [N, S, S, 1]` with L = `window`: arrays `nis, rho [N, P]`, `faithfulness [N]`,
  `firing_window [N, P, 4]`, `source_window [P, 4]`, `source_patch [P, L, L]`, and the head's
  `outputs` (pooled similarity, argmin)."""
  record = explainer.record
  outputs = explainer.outputs(images)
  patches, source_corners = explainer.source_patches(train_images, record["image_index"], record["center"], window)
  nis, rho, f, firing = explainer.faithfulness(images, outputs, patches)
  return {"nis": nis, "rho": rho, "faithfulness": f, "firing_window": firing, "source_window": source_corners,
          "source_patch": patches.astype(np.float32), "outputs": outputs}


def explain(explainer: HeadExplainer, samples, trajectory_x0, train_images, explain_config) -> dict:
  """Every measurement of one head on generated images: the arrays of `<head>.npz`.

  samples: `[N, S, S, 1]` in [-1, 1]; trajectory_x0: `[N, K, S, S, 1]` (x̂0 at the captured steps)
  or None; train_images: the training split `[M, S, S, 1]` the prototypes were pushed from.
  """
  record = explainer.record
  window, window_alt = window_sizes(explainer, samples.shape[1], explain_config)
  scored = score(explainer, samples, train_images, window)
  outputs, nis, firing = scored.pop("outputs"), scored["nis"], scored["firing_window"]
  alt_patches, _ = explainer.source_patches(train_images, record["image_index"], record["center"], window_alt)
  f_alt = explainer.faithfulness(samples, outputs, alt_patches)[2]

  random_params, random_rows, random_centers = explainer.randomized_prototypes(train_images, int(explain_config.seed))
  random_patches, _ = explainer.source_patches(train_images, random_rows, random_centers, window)
  f_random = explainer.faithfulness(samples, explainer.outputs(samples, random_params), random_patches)[2]

  drops = deletion.deletion_check(lambda x: explainer.outputs(x)["pooled_similarity"], samples, firing, nis,
                                  int(explain_config.deletion_top_k), int(explain_config.deletion_random_windows),
                                  float(explain_config.deletion_blur_sigma), int(explain_config.seed))
  arrays = dict(scored, faithfulness_window_alt=f_alt, faithfulness_randomized=f_random,
                source_image_id=record["image_index"], prototype_class=record["tissue_class"],
                deletion_drop_top=drops["drop_top"], deletion_drop_random=drops["drop_random"],
                window=np.int64(window), window_alt=np.int64(window_alt))
  if trajectory_x0 is not None:
    n, k = trajectory_x0.shape[:2]
    pooled = explainer.outputs(trajectory_x0.reshape((n * k,) + trajectory_x0.shape[2:]))["pooled_similarity"]
    arrays["emergence_nis"] = np.asarray(
        normalized_influence(jnp.asarray(pooled), active=explainer.active)).reshape(n, k, -1)
  return arrays
