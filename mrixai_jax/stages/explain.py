"""Stage "explain/<kind>": explains the samples with the trained head `config.heads.kind`.

Writes `WORKDIR/explain/<kind>.npz` (per-image arrays of `head_explainer.explain`, plus
`sample_index [N]`) and `<kind>.json` (its summary: faithfulness, controls, deletion, emergence).
"""

import pathlib

import numpy as np

from mrixai_jax import atomic
from mrixai_jax import workdir as workdir_lib
from mrixai_jax.data import pipeline
from mrixai_jax.explain import head_explainer
from mrixai_jax.training import heads_task


def run(config, workdir: str) -> dict:
  """Explains the first `explain.num_images` samples; returns the summary written to `<kind>.json`."""
  workdir, kind = pathlib.Path(workdir), config.heads.kind
  with np.load(workdir / workdir_lib.SAMPLES_FILE) as f:
    num = min(int(config.explain.num_images), len(f["samples"]))
    samples, trajectory_x0 = f["samples"][:num], f["trajectory_x0"][:num]
  train_images = pipeline.load_split(config.data, "train", str(workdir))["image"]
  model, params, record = heads_task.load(config, str(workdir), kind, samples.shape[1])
  explainer = head_explainer.HeadExplainer(model, params, record, int(config.metrics.batch_size))
  arrays, summary = head_explainer.explain(explainer, samples, trajectory_x0, train_images, config.explain)
  with atomic.atomic_path(workdir / workdir_lib.explain_file(kind, ".npz"), suffix=".npz") as tmp:
    np.savez(tmp, sample_index=np.arange(num), **arrays)
  atomic.write_json(workdir / workdir_lib.explain_file(kind, ".json"), summary)
  return summary
