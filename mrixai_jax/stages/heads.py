"""Stage "heads/<kind>": trains the prototype head `config.heads.kind` (`train.py --config.task=heads`)."""

from mrixai_jax import overrides
from mrixai_jax.training import tasks


def run(config, workdir: str) -> dict:
  """Trains (or resumes) the head, push included; `{"kind", "steps"}`."""
  state = tasks.train(overrides.with_values(config, {"task": "heads"}), workdir)
  return {"kind": config.heads.kind, "steps": int(state.step)}
