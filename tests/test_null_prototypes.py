"""The null of tissue-matched random prototypes against plain numpy: the candidate cells (push rule,
textured windows), the draws, F under drawn prototypes, and the empirical p-value."""

import jax
import numpy as np
import pytest

from mrixai_jax.data import phantom
from mrixai_jax.explain import null_prototypes, push, tissue_firing
from mrixai_jax.explain.influence import normalized_influence
from mrixai_jax.models import prototypes as pm
from mrixai_jax.models import tissue_cells
from tests.test_push import small_heads

WINDOW, MIN_STD = 8, 0.05


@pytest.fixture(scope="module")
def pool():
  data = phantom.generate(8, 32, 3)
  return null_prototypes.make_pool(data, 6, seed=1)


def _window(center, size, image_size):
  y0, x0 = (min(max(int(np.floor(c - size / 2.0)), 0), image_size - size) for c in center)
  return y0, x0


def test_candidates_are_the_textured_cells_the_push_could_use(pool):
  model = pm.build_model(small_heads(), 32)
  start, jump = float(model.rf.start), float(model.rf.jump)
  candidates = null_prototypes.candidate_cells(model, pool, WINDOW, MIN_STD, start, jump)
  fractions = np.asarray(tissue_cells.cell_fractions(pool.labels, model.cells, model.cell_size, 4))
  for t, (rows, cells) in enumerate(candidates):
    expected = set()
    for r in range(len(pool.image)):
      for h in range(model.cells):
        for w in range(model.cells):
          frac = fractions[r, h, w, list(model.tissue_classes)]
          qualifies = frac >= np.asarray(model.purity_threshold)
          if not qualifies.any():
            continue
          thresholds = np.where(qualifies, model.purity_threshold, np.inf)
          ties = np.flatnonzero(qualifies & (np.asarray(model.purity_threshold) == thresholds.min()))
          if ties[np.argmax(frac[ties])] != t:  # the push rule: the thinnest qualifying tissue
            continue
          y0, x0 = _window((start + h * jump, start + w * jump), WINDOW, 32)
          if pool.image[r, y0:y0 + WINDOW, x0:x0 + WINDOW, 0].std() >= MIN_STD:
            expected.add((r, h, w))
    assert {(int(r), int(h), int(w)) for r, (h, w) in zip(rows, cells)} == expected, t
  assert sum(len(rows) for rows, _ in candidates) > 0


def test_draws_follow_each_prototypes_tissue(pool):
  model = pm.build_model(small_heads(), 32)
  candidates = null_prototypes.candidate_cells(model, pool, WINDOW, MIN_STD, float(model.rf.start),
                                               float(model.rf.jump))
  columns = np.array([0, 1, 2, -1, 1])
  rows, cells, found = null_prototypes.draw(np.random.default_rng(), candidates, columns, 50)
  for j, t in enumerate(columns):
    has = t >= 0 and len(candidates[t][0]) > 0
    assert found[:, j].all() == has and found[:, j].any() == has
    if has:
      allowed = {(int(r), int(h), int(w)) for r, (h, w) in zip(*candidates[t])}
      assert {(int(r), int(h), int(w)) for r, (h, w) in zip(rows[:, j], cells[:, j])} <= allowed


def _reference_f(model, z, images, vectors, patches, in_use, start, jump, window):
  """F of every image under one draw, in float64 numpy, distance by distance."""
  z = np.asarray(z, np.float64)
  d = np.maximum(((z[..., None, :] - vectors[None, None, None]) ** 2).sum(-1), 0.0)  # [N, n, n, P]
  flat = d.reshape(len(z), -1, d.shape[-1])
  dmin, argmin, davg = flat.min(axis=1), flat.argmin(axis=1), flat.mean(axis=1)
  sim = lambda v: np.log((v + 1.0) / (v + 1e-4))
  pooled = sim(dmin) - (sim(davg) if model.kind == "protopool" else 0.0)
  nis = np.asarray(normalized_influence(pooled, active=in_use), np.float64)
  out = np.zeros(len(z))
  for i in range(len(z)):
    for j in np.flatnonzero(in_use):
      h, w = divmod(int(argmin[i, j]), model.cells)
      y0, x0 = _window((start + h * jump, start + w * jump), window, images.shape[1])
      a = images[i, y0:y0 + window, x0:x0 + window].astype(np.float64).ravel()
      b = patches[j].astype(np.float64).ravel()
      den = np.linalg.norm(a - a.mean()) * np.linalg.norm(b - b.mean())
      out[i] += nis[i, j] * (np.dot(a - a.mean(), b - b.mean()) / den if den > 1e-8 else 0.0)
  return out


@pytest.mark.parametrize("kind", ["ppnet", "protopool"])
def test_null_faithfulness_equals_numpy_reference(pool, kind):
  model = pm.build_model(small_heads(kind), 32)
  params = jax.device_get(pm.init_params(model, jax.random.PRNGKey(0)))
  data = phantom.generate(8, 32, 5)
  _, record = push.push_prototypes(model, params, data, batch_size=4)
  start, jump = float(record["start"]), float(record["jump"])
  candidates = null_prototypes.candidate_cells(model, pool, WINDOW, MIN_STD, start, jump)
  columns = tissue_firing.tissue_columns(model, record["tissue_class"])
  draws = null_prototypes.draw(np.random.default_rng(), candidates, columns, 4)
  rng = np.random.default_rng()
  # Features drawn at random (an untrained trunk's are nearly constant: arg-min ties).
  features = lambda n: rng.uniform(0, 1, (n, model.cells, model.cells, model.prototype_dim)).astype(np.float32)
  pool_z, sample_z = features(len(pool.image)), features(3)
  samples = rng.uniform(-1, 1, (3, 32, 32, 1)).astype(np.float32)
  active = np.asarray(pm.active_prototypes(model, params))
  f = null_prototypes.null_faithfulness(model, pool_z, pool, sample_z, samples, draws, active, record, WINDOW)
  rows, cells, found = draws
  assert f.shape == (4, 3)
  for d in range(4):
    vectors = pool_z[rows[d], cells[d, :, 0], cells[d, :, 1]].astype(np.float64)
    patches = []
    for r, (h, w) in zip(rows[d], cells[d]):
      y0, x0 = _window((start + h * jump, start + w * jump), WINDOW, 32)
      patches.append(pool.image[r, y0:y0 + WINDOW, x0:x0 + WINDOW, 0])
    expected = _reference_f(model, sample_z, samples[..., 0], vectors, np.stack(patches), active & found[d],
                            start, jump, WINDOW)
    np.testing.assert_allclose(f[d], expected, atol=1e-4)  # float32 against float64


def test_p_value_counts_draws_at_least_as_large():
  null = np.random.default_rng().standard_normal(99)
  assert null_prototypes.p_value(null.max() + 1, null) == pytest.approx(1 / 100)
  assert null_prototypes.p_value(null.min() - 1, null) == 1.0
  median = np.sort(null)[49]
  assert null_prototypes.p_value(median, null) == pytest.approx((1 + 50) / 100)
