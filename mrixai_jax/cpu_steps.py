"""CPU backend policy: how many images a memory-bound pass runs per step on XLA:CPU.

Beside `xla_flags.py` (the other CPU-only choices). On XLA:CPU a VGG16 or InceptionV3 pass over
many images keeps activations far larger than the caches (conv1_2 of 16 images of 256²: 268 MB);
the same pass over a few images at a time (`models.stepped.map_in_steps`) runs faster. Other
backends run the whole batch in one step. Measurements: docs/PERFORMANCE.md ("LPIPS").
"""

import jax

# VGG16 runs over about this many image pixels at a time (2 images of 256²): conv1_2 and the conv2
# block alone run at 424 / 428 GFLOP/s on one 256² image against 299 / 334 on four.
VGG16_PIXELS_PER_STEP = 2 * 256 * 256
# InceptionV3 (inputs resized to 299²) runs one image per step: 16 images of 64² took 820 ms that
# way against 1371 ms as one batch (2 per step: 1073 ms).
INCEPTION_IMAGES_PER_STEP = 1


def rows_per_step(cpu_rows: int, batch: int) -> int:
  """Rows per step for a batch of `batch`: `cpu_rows` (at least 1) on CPU, where small steps keep
  the activations in cache; the whole batch (one pass) on other backends."""
  return max(1, int(cpu_rows)) if jax.default_backend() == "cpu" else batch


def vgg16_images(height: int, width: int) -> int:
  """Images of `height x width` per VGG16 step on CPU: about `VGG16_PIXELS_PER_STEP` pixels, at
  least 1."""
  return max(1, VGG16_PIXELS_PER_STEP // (height * width))


def vgg16_rows(height: int, width: int, batch: int) -> int:
  """`rows_per_step` of a VGG16 pass over a batch of `batch` images of `height x width`."""
  return rows_per_step(vgg16_images(height, width), batch)


def lpips_pairs(height: int, width: int, num_pairs: int) -> int:
  """Pairs per LPIPS step: on CPU half of `vgg16_images` (1 pair of 256², 1.07x faster than 2 with
  the default weights; benchmarks/constant_weights.py); elsewhere all `num_pairs`."""
  return rows_per_step(vgg16_images(height, width) // 2, num_pairs)


def inception_rows(batch: int) -> int:
  """`rows_per_step` of an InceptionV3 pass over a batch of `batch` images."""
  return rows_per_step(INCEPTION_IMAGES_PER_STEP, batch)
