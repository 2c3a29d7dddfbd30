"""Do prototypes of tissue t fire inside tissue-t regions? (A localisation check of trained heads.)

A prototype fires at the arg-min cell of its distance map. The firing is a hit when that cell
qualifies for the prototype's tissue (its fraction of that tissue reaches the class purity
threshold, the rule the training labels use); chance is the fraction of the image's cells that
qualify, i.e. the hit rate of a uniformly random cell.
"""

import jax
import numpy as np

from mrixai_jax import batched
from mrixai_jax.models import prototypes as pm
from mrixai_jax.models import tissue_cells


def qualifying_cells(model: pm.ProtoModel, labels) -> np.ndarray:
  """`[N, n·n, T]` bool: which feature cells (flat, (h, w) row-major) of `labels: [N, S, S]` qualify
  for each tissue of `model.tissue_classes` (fraction of that tissue >= its purity threshold)."""
  num_labels = int(max(model.tissue_classes)) + 1
  frac = np.asarray(tissue_cells.cell_fractions(np.asarray(labels), model.cells, model.cell_size, num_labels))
  qualifies = frac[..., list(model.tissue_classes)] >= np.asarray(model.purity_threshold)  # [N, n, n, T]
  return qualifies.reshape(len(qualifies), -1, model.num_classes)


def tissue_columns(model: pm.ProtoModel, prototype_tissue) -> np.ndarray:
  """`[P]` index into `model.tissue_classes` of each prototype's tissue label (−1: none)."""
  tissue_index = {t: i for i, t in enumerate(model.tissue_classes)}
  return np.array([tissue_index.get(int(t), -1) for t in prototype_tissue])


def hits_at(model: pm.ProtoModel, argmin, labels, prototype_tissue) -> tuple:
  """`(hit [N, P] bool, chance [N, P] float)` of firing cells `argmin: [N, P]` (flat arg-min cells
  of `image_outputs`) on images labelled `labels: [N, S, S]`; `prototype_tissue [P]` as below."""
  column = tissue_columns(model, prototype_tissue)
  own = qualifying_cells(model, labels)[:, :, np.maximum(column, 0)]  # [N, n·n, P]
  hit = np.take_along_axis(own, np.asarray(argmin)[:, None, :], axis=1)[:, 0, :]
  return hit & (column >= 0), np.where(column >= 0, own.mean(axis=1), 0.0)


def firing_hits(model: pm.ProtoModel, params: dict, images, labels, prototype_tissue, batch_size: int = 64):
  """`(hit [N, P] bool, chance [N, P] float)` for held-out `images [N, S, S, 1]`, `labels [N, S, S]`.

  prototype_tissue: `[P]` label-map value each prototype stands for (e.g. the push record's
  `tissue_class`; −1 entries give no hits and chance 0).
  """
  forward = jax.jit(lambda x: pm.image_outputs(model, params, x)["argmin"])
  return batched.host_map(lambda x, lab: hits_at(model, np.asarray(forward(x)), lab, prototype_tissue),
                          (images, labels), pm.inference_batch(model, batch_size), "tissue firing")


def tissue_firing_rates(model, params, images, labels, prototype_tissue) -> dict:
  """Per tissue class: `{"hit_rate", "chance", "ratio"}` over images containing the tissue."""
  hit, chance = firing_hits(model, params, images, labels, prototype_tissue)
  out = {}
  for t in model.tissue_classes:
    cols = np.asarray(prototype_tissue) == t
    present = chance[:, cols] > 0  # images where tissue t qualifies somewhere
    if not cols.any() or not present.any():
      out[int(t)] = {"hit_rate": float("nan"), "chance": float("nan"), "ratio": float("nan")}
      continue
    rate, base = hit[:, cols][present].mean(), chance[:, cols][present].mean()
    out[int(t)] = {"hit_rate": float(rate), "chance": float(base), "ratio": float(rate / base)}
  return out
