"""Batch functions applied a few rows at a time (`models.stepped`) equal one pass over the batch."""

import jax.numpy as jnp
import numpy as np
import pytest

from mrixai_jax.metrics import frechet
from mrixai_jax import cpu_steps
from mrixai_jax.models import stepped


@pytest.mark.parametrize("per_step", [1, 2, 3, 7, 10])
def test_map_in_steps_equals_numpy(per_step):
  rng = np.random.default_rng(per_step)
  a = rng.standard_normal((7, 4, 5)).astype(np.float32)
  b = rng.standard_normal((7, 4, 5)).astype(np.float32)
  fn = lambda u, v: jnp.tanh(u).sum(axis=2) * v[:, :, 0]
  out = stepped.map_in_steps(fn, (jnp.asarray(a), jnp.asarray(b)), per_step)
  np.testing.assert_allclose(np.asarray(out), np.tanh(a).sum(axis=2) * b[:, :, 0], rtol=1e-5, atol=1e-6)


def test_vgg_extractor_in_steps_equals_one_pass(tmp_path, monkeypatch):
  x = np.random.default_rng(3).uniform(-1, 1, (5, 32, 32, 1)).astype(np.float32)
  monkeypatch.setattr(cpu_steps, "VGG16_PIXELS_PER_STEP", 10 ** 9)
  assert cpu_steps.vgg16_images(32, 32) >= 5
  whole = np.asarray(frechet.vgg_extractor("conv2_2", cache_dir=tmp_path)(x))
  monkeypatch.setattr(cpu_steps, "VGG16_PIXELS_PER_STEP", 2 * 32 * 32)  # 2 images per step, the last padded
  assert cpu_steps.vgg16_images(32, 32) == 2
  stepped_feats = np.asarray(frechet.vgg_extractor("conv2_2", cache_dir=tmp_path)(x))
  assert whole.shape == (5, 128)
  np.testing.assert_allclose(stepped_feats, whole, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("size, batch, expected", [(64, 16, 16), (64, 64, 32), (256, 16, 2), (256, 1, 1), (512, 8, 1)])
def test_inference_batch_caps_cpu_calls_at_two_256_images_of_pixels(size, batch, expected):
  from configs import demo  # pylint: disable=g-import-not-at-top
  from mrixai_jax.models import prototypes as pm  # pylint: disable=g-import-not-at-top
  heads = demo.get_config().heads
  heads.vgg_layer = "conv4_3"  # 16-px cells tile every size above
  assert pm.inference_batch(pm.build_model(heads, size), batch) == expected  # tests run on the CPU backend
