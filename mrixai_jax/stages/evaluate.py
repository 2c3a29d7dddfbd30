"""Stage "evaluate": Table 1 (PSNR, SSIM, LPIPS, FID / FD-VGG, Dice and the references) of the samples."""

from mrixai_jax import evaluate


def run(config, workdir: str) -> dict:
  """Writes `WORKDIR/eval/metrics.{json,md}`; the table."""
  return evaluate.run(config, workdir)
