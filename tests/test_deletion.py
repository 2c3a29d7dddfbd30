"""Deletion check on a similarity function whose answer is known, and the tissue-matched draws."""

import numpy as np

from mrixai_jax.explain import deletion

WINDOWS = [(0, 0), (16, 16), (8, 24)]  # prototype j fires in the 8x8 window at WINDOWS[j]


def _bright_spot_similarity(images):
  """Prototype j's similarity = mean intensity in a fixed 8×8 window j (a known 'where it fires')."""
  return np.stack([images[:, y:y + 8, x:x + 8, 0].mean(axis=(1, 2)) for y, x in WINDOWS], axis=1)


def _corners(rows):
  return np.array([[y, x, y + 8, x + 8] for y, x in rows])


def test_deleting_where_prototypes_fire_drops_more_than_random_windows():
  rng = np.random.default_rng()
  images = np.full((4, 32, 32, 1), -1.0, np.float32)
  images[:, 16:24, 16:24] = 1.0  # prototype 1's window is bright
  images += rng.normal(0, 0.01, images.shape).astype(np.float32)
  firing = np.broadcast_to(_corners(WINDOWS), (4, 3, 4))
  top = deletion.top_prototypes(np.tile([0.1, 0.8, 0.1], (4, 1)), 1)
  assert np.all(top == 1)
  # Random windows of the same size away from the bright square (its tissue is elsewhere here).
  random = np.stack([np.broadcast_to(_corners([(y, x)]), (4, 1, 4)) for y, x in [(0, 8), (24, 0), (0, 24)]])
  out = deletion.similarity_drops(_bright_spot_similarity, images, top, firing[np.arange(4)[:, None], top], random,
                                  blur_sigma=3.0)
  assert out["drop_top"].shape == (4,) and out["drop_random"].shape == (4,)
  assert np.all(out["drop_top"] > 0.3)
  assert np.all(out["drop_top"] > 3 * np.abs(out["drop_random"]))


def test_top_prototypes_are_the_largest_nis_first():
  rng = np.random.default_rng()
  nis = rng.dirichlet(np.ones(7), size=5)
  top = deletion.top_prototypes(nis, 3)
  np.testing.assert_array_equal(top, np.array([sorted(range(7), key=lambda j: -row[j])[:3] for row in nis]))


def test_matched_random_cells_stay_on_allowed_cells_uniformly_and_fall_back_to_all():
  rng = np.random.default_rng()
  allowed = rng.random((3, 2, 16)) < 0.3
  allowed[0, 0] = False  # the tissue of image 0's first top prototype is absent
  allowed[1, 1] = False
  allowed[1, 1, [2, 9]] = True  # two allowed cells: each drawn about half of the time
  cells = deletion.matched_random_cells(rng, allowed, 4000)  # [R, N, k]
  assert cells.shape == (4000, 3, 2)
  for i in range(3):
    for k in range(2):
      ok = allowed[i, k] if allowed[i, k].any() else np.ones(16, bool)
      assert ok[cells[:, i, k]].all(), (i, k)
  assert len(np.unique(cells[:, 0, 0])) == 16  # fallback: every cell
  share = np.mean(cells[:, 1, 1] == 2)
  assert abs(share - 0.5) < 0.05, share  # 4000 draws: SD of the share 0.008
