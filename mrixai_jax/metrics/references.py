"""Reference levels for the image-quality table, so a score reads between chance and ceiling.

- `shuffled_pairs`: each real counterpart against the counterpart of another patient (chance level
  for PSNR/SSIM/LPIPS of a generator that ignores the mask's anatomy but makes real-looking slices).
- `noise_oracle` (phantom data only): each counterpart re-acquired with fresh pixel noise, same
  anatomy and texture: the best a mask-conditioned generator could score, since it cannot know the
  acquisition noise.
- real vs real Fréchet distances: the test counterparts against as many real training slices (what
  a set of real images scores, given the set size).
Images `[N, H, W, 1]` float32 in [-1, 1].
"""

import numpy as np


def shuffled_pairs(patient_ids, slice_indices, seed: int) -> np.ndarray:
  """Partner row `[N]` for each row, chosen at random: a row of another patient; when every row is
  one patient, another slice of it; when the rows are one slice repeated, the row itself."""
  patient_ids, slice_indices = np.asarray(patient_ids), np.asarray(slice_indices)
  rng = np.random.default_rng(seed)
  partners = np.arange(len(patient_ids))
  for i in range(len(patient_ids)):
    for others in (np.flatnonzero(patient_ids != patient_ids[i]),
                   np.flatnonzero((patient_ids == patient_ids[i]) & (slice_indices != slice_indices[i]))):
      if others.size:
        partners[i] = rng.choice(others)
        break
  return partners


def phantom_row(patient_id: str, slice_index: int, slices_per_patient: int) -> int:
  """Global phantom slice number of `phantom_XXXX` slice `slice_index` (see `phantom.generate`)."""
  prefix = "phantom_"
  if not str(patient_id).startswith(prefix):
    raise ValueError(f"{patient_id!r} is not a phantom patient id")
  return int(str(patient_id)[len(prefix):]) * slices_per_patient + int(slice_index)


def noise_oracle(patient_ids, slice_indices, data_config, noise_seed: int) -> np.ndarray:
  """The phantom counterparts `[N, S, S, 1]` re-acquired with pixel noise from `noise_seed`."""
  from mrixai_jax.data import phantom  # pylint: disable=g-import-not-at-top
  spp = int(data_config.phantom_slices_per_patient)
  images = [phantom.generate(1, int(data_config.image_size), int(data_config.seed), spp, start=phantom_row(p, s, spp),
                             noise_seed=noise_seed)["image"][0] for p, s in zip(patient_ids, slice_indices)]
  return np.stack(images)


def real_training_slices(train_images, count: int, seed: int) -> np.ndarray:
  """`count` training slices drawn without replacement (all of them when fewer)."""
  rows = np.random.default_rng(seed).permutation(len(train_images))[:count]
  return np.asarray(train_images[np.sort(rows)], np.float32)
