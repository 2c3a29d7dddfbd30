"""Image-quality metrics: PSNR, SSIM, LPIPS, FID/FD-VGG, Dice.

Public API (per-image `[B]` arrays for `[B, H, W, C]` images in [-1, 1]):
`psnr`, `ssim`, `lpips` (VGG, v0.1 weights), `dice` (masks `[B, H, W]`);
`frechet_distance(mu1, cov1, mu2, cov2)` and `fid(real, fake)` / `fd_vgg(real, fake)` -> float.
Modules: image_quality, lpips, frechet, overlap (Dice), segmenter; their weights come from
`mrixai_jax.pretrained`. Note that the package attribute `lpips` is the function; the module is
`importlib.import_module("mrixai_jax.metrics.lpips")` (or `sys.modules`).
"""

from mrixai_jax.metrics.frechet import fd_vgg
from mrixai_jax.metrics.frechet import fid
from mrixai_jax.metrics.frechet import frechet_distance
from mrixai_jax.metrics.image_quality import psnr
from mrixai_jax.metrics.image_quality import ssim
from mrixai_jax.metrics.lpips import lpips
from mrixai_jax.metrics.overlap import dice

__all__ = ["psnr", "ssim", "lpips", "dice", "frechet_distance", "fid", "fd_vgg"]
