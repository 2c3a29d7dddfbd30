"""Intensity statistics of generated slices against their real counterparts, per tissue of the mask.

A mask-conditioned generator cannot know a slice's acquisition noise, but it should reproduce each
tissue's brightness: a global offset (the failure these numbers were made to catch) shows as the
same `diff` in every tissue. Images `[N, H, W, 1]` float32 in [-1, 1]; labels `[N, H, W]` (the
label map: 0 background, 1 fat, 2 FGT, 3 vessels).
"""

import numpy as np

from mrixai_jax.data.masks import BACKGROUND, FAT, FGT, VESSELS

TISSUES = {"background": BACKGROUND, "fat": FAT, "fgt": FGT, "vessels": VESSELS}


def tissue_means(images, labels) -> dict:
  """`{tissue: mean pixel value over all pixels of that label in all images}` (None when absent)."""
  images, labels = np.asarray(images, np.float64)[..., 0], np.asarray(labels)
  out = {}
  for name, value in TISSUES.items():
    pixels = images[labels == value]
    out[name] = float(pixels.mean()) if pixels.size else None
  return out


def intensity_table(samples, counterparts, labels) -> dict:
  """`{tissue: {"sample_mean", "real_mean", "diff"}}`, diff = sample − real (None where absent)."""
  fake, real = tissue_means(samples, labels), tissue_means(counterparts, labels)
  return {name: {"sample_mean": fake[name], "real_mean": real[name],
                 "diff": None if fake[name] is None else fake[name] - real[name]} for name in TISSUES}


def air_statistics(samples, counterparts, threshold: float) -> dict:
  """Mean and SD of the pixels where the real slice is below `threshold` (air: noise only), in the
  sample and in the real slice: `{"pixels", "sample_mean", "real_mean", "sample_sd", "real_sd",
  "sd_ratio"}` (values None when no pixel qualifies)."""
  fake, real = np.asarray(samples, np.float64), np.asarray(counterparts, np.float64)
  air = real < threshold
  if not air.any():
    return {"pixels": 0, "sample_mean": None, "real_mean": None, "sample_sd": None, "real_sd": None,
            "sd_ratio": None}
  fake_sd, real_sd = float(fake[air].std()), float(real[air].std())
  return {"pixels": int(air.sum()), "sample_mean": float(fake[air].mean()), "real_mean": float(real[air].mean()),
          "sample_sd": fake_sd, "real_sd": real_sd, "sd_ratio": fake_sd / real_sd if real_sd > 0 else None}
