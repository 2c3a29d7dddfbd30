"""Null distribution of F: the same head with random prototypes of each prototype's own tissue.

One draw replaces every prototype j by the feature vector of a random cell of a pool of training
images, chosen among the cells the push could have given j (valid cells of j's tissue, the push
rule) whose L×L window is not flat (pixel SD >= `explain.null_min_window_std`); that window is
the drawn prototype's source patch. The head is otherwise unchanged (add-on, pooling, NIS over the
same active prototypes), so F under `explain.null_draws` draws is what F is when the prototypes
carry no learnt meaning but sit on the same kind of tissue. Prototypes without a tissue (ProtoPool
prototypes in no slot) keep NIS 0.
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from mrixai_jax.explain import scoring as fa
from mrixai_jax.explain.influence import normalized_influence
from mrixai_jax.models import proto_engine as pe
from mrixai_jax.models import prototypes as pm


@dataclasses.dataclass(frozen=True)
class Pool:
  """Training images the random prototypes are drawn from: `image [R, S, S, 1]`, `labels [R, S, S]`."""
  image: np.ndarray
  labels: np.ndarray


def make_pool(split: dict, num_images: int, seed: int) -> Pool:
  """`num_images` training images (all when fewer) drawn without replacement, in dataset order."""
  total = len(split["image"])
  rows = np.sort(np.random.default_rng(seed).choice(total, size=min(num_images, total), replace=False))
  return Pool(image=np.asarray(split["image"])[rows], labels=np.asarray(split["labels"])[rows])


def _all_cells(model: pm.ProtoModel) -> np.ndarray:
  """`[n·n, 2]` (h, w) of every feature cell, row-major."""
  h, w = np.meshgrid(np.arange(model.cells), np.arange(model.cells), indexing="ij")
  return np.stack([h.ravel(), w.ravel()], axis=-1)


@functools.partial(jax.jit, static_argnames=("window",))
def _window_sd(images, corners, window: int):
  """Pixel SD `[R, C]` of the L×L windows `corners: [C, 4]` of every image of `images: [R, S, S]`."""
  corners = jnp.broadcast_to(corners, (images.shape[0],) + corners.shape)
  return jnp.std(fa.extract_windows(images, corners, window), axis=(-2, -1))


def candidate_cells(model: pm.ProtoModel, pool: Pool, window: int, min_std: float, start: float,
                    jump: float) -> list:
  """Per tissue index t of `model.tissue_classes`: `(rows [K], cells [K, 2])` of the pool's cells
  that are valid for t under the push rule and whose L×L window has pixel SD >= `min_std`."""
  cells = _all_cells(model)
  corners = fa.cell_corners(cells, start, jump, window, pool.image.shape[1:3])  # [n·n, 4]
  textured = np.asarray(_window_sd(jnp.asarray(pool.image[..., 0]), corners, window)) >= min_std
  index, valid = (np.asarray(a).reshape(len(pool.image), -1) for a in pm.cell_targets(model, pool.labels))
  out = []
  for t in range(model.num_classes):
    rows, flat = np.nonzero(valid & (index == t) & textured)
    out.append((rows, cells[flat]))
  return out


def draw(rng: np.random.Generator, candidates: list, columns, num_draws: int) -> tuple:
  """`(rows [D, P], cells [D, P, 2], found [D, P] bool)`: for each draw and prototype j, a uniform
  candidate of its tissue index `columns[j]` (−1, or a tissue without candidates: found False)."""
  columns = np.asarray(columns)
  rows = np.zeros((num_draws, len(columns)), np.int64)
  cells = np.zeros((num_draws, len(columns), 2), np.int64)
  found = np.zeros((num_draws, len(columns)), bool)
  for j, t in enumerate(columns):
    if t < 0 or len(candidates[t][0]) == 0:
      continue
    pick = rng.integers(0, len(candidates[t][0]), size=num_draws)
    rows[:, j], cells[:, j], found[:, j] = candidates[t][0][pick], candidates[t][1][pick], True
  return rows, cells, found


@functools.partial(jax.jit, static_argnames=("model", "window"))
def _null_faithfulness(model, z, images, vectors, patches, in_use, start, jump, window):
  """F `[D, N]` of `images [N, S, S]` (features `z [N, n, n, Dim]`) under drawn prototypes `vectors
  [D, P, Dim]` with source patches `[D, P, L, L]` and `in_use [D, P]`, one draw at a time."""

  def one_draw(drawn):
    vectors, patches, in_use = drawn
    pooled = pm.pooled_from_distances(model, pe.l2_distances(z, vectors[:, None, None, :]))
    nis = normalized_influence(pooled["pooled_similarity"], active=in_use)
    corners = fa.cell_corners(pm.firing_cells(model, pooled["argmin"]), start, jump, window, images.shape[1:3])
    return fa.faithfulness(nis, fa.pearson(fa.extract_windows(images, corners, window), patches[None]))

  return jax.lax.map(one_draw, (vectors, patches, in_use))


def null_faithfulness(model: pm.ProtoModel, pool_z, pool: Pool, sample_z, samples, draws: tuple, active,
                      record: dict, window: int) -> np.ndarray:
  """F `[D, N]` of `samples [N, S, S, 1]` (prototype-space features `sample_z [N, n, n, Dim]`) under
  the drawn prototypes `draws` (`draw`'s output) taken from `pool_z [R, n, n, Dim]`, the features
  of `pool`; `active [P]`: the head's prototypes in use (the others, and prototypes without a
  candidate, get NIS 0)."""
  rows, cells, found = draws
  start, jump = float(record["start"]), float(record["jump"])
  vectors = np.asarray(pool_z)[rows, cells[..., 0], cells[..., 1]]  # [D, P, Dim]
  corners = np.asarray(fa.cell_corners(cells, start, jump, window, pool.image.shape[1:3]))  # [D, P, 4]
  patches = np.stack([np.asarray(fa.extract_windows(pool.image[rows[:, j], ..., 0], corners[:, j, None], window))[:, 0]
                      for j in range(rows.shape[1])], axis=1)  # [D, P, L, L], one prototype at a time
  patches = np.where(found[..., None, None], patches, 0.0).astype(np.float32)
  in_use = np.asarray(active)[None] & found
  return np.asarray(_null_faithfulness(model, jnp.asarray(sample_z), jnp.asarray(samples[..., 0], jnp.float32),
                                       jnp.asarray(vectors), jnp.asarray(patches), jnp.asarray(in_use),
                                       start, jump, window))


def p_value(observed: float, null) -> float:
  """One-sided empirical p-value of `observed` against null draws `[D]`: (1 + #{null >= observed}) /
  (1 + D), never 0 (a draw as extreme as the data counts for it)."""
  null = np.asarray(null, np.float64).ravel()
  return float((1 + np.sum(null >= observed)) / (1 + null.size))
