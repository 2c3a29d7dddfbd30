"""Stage "diffusion": trains the mask-conditioned diffusion model (`train.py`'s default task)."""

from mrixai_jax import overrides
from mrixai_jax.training import tasks


def run(config, workdir: str) -> dict:
  """Trains (or resumes) to `train.num_steps`; `{"steps": steps trained in all}`."""
  state = tasks.train(overrides.with_values(config, {"task": "diffusion"}), workdir)
  return {"steps": int(state.step)}
