"""Stage "samples": generates `sample.num_samples` images with trajectories (`sample.py`; see `mrixai_jax.generate`)."""

from mrixai_jax import generate


def run(config, workdir: str) -> dict:
  """Writes `WORKDIR/samples/`; the sampling summary (images, seconds, rate, non-finite indices)."""
  return generate.run(config, workdir)
