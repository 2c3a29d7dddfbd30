"""Deletion check on a similarity function whose answer is known."""

import numpy as np

from mrixai_jax.explain.deletion import deletion_check


def _bright_spot_similarity(images):
  """Prototype j's similarity = mean intensity in a fixed 8×8 window j (a known 'where it fires')."""
  windows = [(0, 0), (16, 16), (8, 24)]
  return np.stack([images[:, y:y + 8, x:x + 8, 0].mean(axis=(1, 2)) for y, x in windows], axis=1)


def test_deleting_where_prototypes_fire_drops_more_than_random_windows():
  rng = np.random.default_rng()
  images = np.full((4, 32, 32, 1), -1.0, np.float32)
  images[:, 16:24, 16:24] = 1.0  # prototype 1's window is bright
  images += rng.normal(0, 0.01, images.shape).astype(np.float32)
  corners = np.broadcast_to(np.array([[0, 0, 8, 8], [16, 16, 24, 24], [8, 24, 16, 32]]), (4, 3, 4))
  nis = np.tile([0.1, 0.8, 0.1], (4, 1))
  out = deletion_check(_bright_spot_similarity, images, corners, nis, top_k=1, num_random=8,
                       blur_sigma=3.0, seed=0)
  assert out["drop_top"].shape == (4,) and out["drop_random"].shape == (4,)
  assert np.all(out["drop_top"] > 0.3)
  assert np.all(out["drop_top"] > 3 * np.abs(out["drop_random"]))


def test_deletion_is_deterministic_for_a_seed():
  rng = np.random.default_rng(1)
  images = rng.uniform(-1, 1, (2, 32, 32, 1)).astype(np.float32)
  corners = np.broadcast_to(np.array([[0, 0, 8, 8], [16, 16, 24, 24], [8, 24, 16, 32]]), (2, 3, 4))
  nis = np.tile([0.2, 0.5, 0.3], (2, 1))
  a = deletion_check(_bright_spot_similarity, images, corners, nis, 2, 4, 2.0, seed=5)
  b = deletion_check(_bright_spot_similarity, images, corners, nis, 2, 4, 2.0, seed=5)
  np.testing.assert_array_equal(a["drop_random"], b["drop_random"])
