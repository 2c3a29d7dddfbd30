"""PSNR and SSIM against scikit-image (Wang settings) and the metrics brief's reference numbers."""

import numpy as np
import pytest
from scipy import ndimage
from skimage import metrics as skm

from mrixai_jax.metrics import image_quality as iq

WANG = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=2.0)


def _random_pair(rng, shape):
  a = rng.uniform(-1, 1, shape)
  return a, np.clip(a + rng.normal(0, 0.3, shape), -1, 1)


def _smooth_pair(rng, shape):
  a = ndimage.gaussian_filter(rng.uniform(size=shape), sigma=(0, 2.5, 2.5, 0))
  a = 2 * (a - a.min()) / (a.max() - a.min()) - 1
  return a, np.clip(a + rng.normal(0, 0.05, shape), -1, 1)


@pytest.mark.parametrize("make", [_random_pair, _smooth_pair])
@pytest.mark.parametrize("shape", [(3, 11, 11, 1), (2, 32, 48, 1), (2, 64, 64, 3), (1, 97, 130, 1)])
def test_ssim_and_psnr_equal_scikit_image(make, shape):
  rng = np.random.default_rng(sum(shape))
  a, b = make(rng, shape)
  ours = np.asarray(iq.ssim(a.astype(np.float32), b.astype(np.float32)))
  ref = [skm.structural_similarity(x, y, channel_axis=-1, **WANG) for x, y in zip(a, b)]
  np.testing.assert_allclose(ours, ref, atol=1e-5)
  ours_psnr = np.asarray(iq.psnr(a.astype(np.float32), b.astype(np.float32)))
  ref_psnr = [skm.peak_signal_noise_ratio(x, y, data_range=2.0) for x, y in zip(a, b)]
  np.testing.assert_allclose(ours_psnr, ref_psnr, atol=1e-4, rtol=1e-5)


def _case(seed):
  """metrics.md §3.3 cases A (random) and B (smooth), 8-bit range."""
  rng = np.random.default_rng(seed)
  if seed == 0:
    x = rng.integers(0, 256, (32, 32)).astype(np.float64)
    noise = 20
  else:
    x = ndimage.gaussian_filter(rng.uniform(0, 255, (48, 48)), 2.0)
    x = (x - x.min()) / (x.max() - x.min()) * 255
    noise = 10
  y = np.clip(x + rng.normal(0, noise, x.shape), 0, 255)
  return x[None, ..., None], y[None, ..., None]


@pytest.mark.parametrize("seed,ssim_ref,psnr_ref", [(0, 0.9674161161, 22.6803628402),
                                                     (1, 0.9132425670, 28.2145935634)])
def test_brief_reference_values(seed, ssim_ref, psnr_ref):
  x, y = _case(seed)
  np.testing.assert_allclose(iq.ssim(x, y, data_range=255.0), [ssim_ref], atol=1e-6)
  np.testing.assert_allclose(iq.psnr(x, y, data_range=255.0), [psnr_ref], atol=1e-4)
  # Getting the range wrong must be visible at this tolerance (brief: 0.9672240805 with R = 2).
  if seed == 0:
    assert x[0, 0, :4, 0].tolist() == [217, 163, 130, 69]  # the brief's inputs were reproduced
    assert abs(float(iq.ssim(x, y, data_range=2.0)[0]) - ssim_ref) > 1e-4


def test_sample_covariance_switch_matches_scikit_image():
  rng = np.random.default_rng(5)
  a, b = _smooth_pair(rng, (2, 40, 40, 1))
  ours = iq.ssim(a, b, use_sample_covariance=True)
  ref = [skm.structural_similarity(x[..., 0], y[..., 0], gaussian_weights=True, sigma=1.5,
                                   use_sample_covariance=True, data_range=2.0) for x, y in zip(a, b)]
  np.testing.assert_allclose(ours, ref, atol=1e-5)


def test_identical_images():
  a = np.random.default_rng(0).uniform(-1, 1, (2, 16, 16, 1)).astype(np.float32)
  np.testing.assert_allclose(iq.ssim(a, a), 1.0, atol=1e-6)
  assert np.all(np.isinf(iq.psnr(a, a)))


def test_bad_inputs_raise_clear_errors():
  with pytest.raises(ValueError, match="at least 11x11"):
    iq.ssim(np.zeros((1, 10, 20, 1)), np.zeros((1, 10, 20, 1)))
  with pytest.raises(ValueError, match="equal shape"):
    iq.psnr(np.zeros((1, 16, 16, 1)), np.zeros((1, 16, 16, 3)))
