"""Stage "heads/<kind>": trains the prototype head `config.heads.kind` once per seed of
`explain.head_seeds` (`train.py --config.task=heads --config.heads.seed_index=k` each)."""

from mrixai_jax import overrides
from mrixai_jax.training import feature_cache
from mrixai_jax.training import tasks


def run(config, workdir: str) -> dict:
  """Trains (or resumes) every seed of the head, push included; `{"kind", "steps": [per seed]}`."""
  steps = []
  try:
    for k in range(int(config.explain.head_seeds)):
      state = tasks.train(overrides.with_values(config, {"task": "heads", "heads.seed_index": k}), workdir)
      steps.append(int(state.step))
  finally:
    feature_cache.forget()  # the seeds of this kind shared one frozen trunk's features
  return {"kind": config.heads.kind, "steps": steps}
