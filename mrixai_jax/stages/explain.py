"""Stage "explain/<kind>": explains the samples with every seed of the head `config.heads.kind`.

Per seed k of `explain.head_seeds`: `WORKDIR/explain/<kind>/seed<k>.npz` (per-image arrays of
`head_explainer.explain`, plus `sample_index [N]`) and, where the samples have real counterparts,
`seed<k>_real.npz` (`head_explainer.score` of the same head on the counterparts of the same masks).
`explain/<kind>.npz` is the first seed's file (the schema scripts read); `<kind>.json` the summary
over seeds (`aggregate.head_summary`: faithfulness with two-level CIs, real reference, controls).
"""

import pathlib
import shutil

import numpy as np

from mrixai_jax import atomic
from mrixai_jax import workdir as workdir_lib
from mrixai_jax.data import pipeline
from mrixai_jax.explain import aggregate
from mrixai_jax.explain import head_explainer
from mrixai_jax.explain import null_prototypes
from mrixai_jax.training import feature_cache
from mrixai_jax.training import heads_task

REAL_KEYS = ("nis", "rho", "faithfulness", "firing_window")  # what seed<k>_real.npz keeps
OUTPUT_VERSION = 1  # 1: F(L), null, matched deletion, tissue purity, emergence (older markers rerun)


def has_counterparts(samples_file) -> bool:
  """Whether an open samples.npz holds real counterparts of its masks."""
  return "counterparts" in samples_file.files and samples_file["counterparts"].size > 0


def patient_groups(samples_file, num_images: int):
  """Patient of each of the first `num_images` samples (their counterparts'); None without
  counterparts (masks from a folder: the images are treated as independent)."""
  if not has_counterparts(samples_file):
    return None
  return samples_file["counterpart_patient_id"][:min(num_images, len(samples_file["samples"]))]


def explained_images(workdir: pathlib.Path, num_images: int) -> dict:
  """The first `num_images` samples: `samples`, `labels`, `trajectory_x0`, `trajectory_steps`,
  `counterparts` (None without), `groups` (`patient_groups`)."""
  with np.load(workdir / workdir_lib.SAMPLES_FILE) as f:
    num = min(num_images, len(f["samples"]))
    return {"samples": f["samples"][:num], "labels": f["labels"][:num], "trajectory_x0": f["trajectory_x0"][:num],
            "trajectory_steps": f["trajectory_steps"],
            "counterparts": f["counterparts"][:num] if has_counterparts(f) else None,
            "groups": patient_groups(f, num)}


def _write_npz(path: pathlib.Path, arrays: dict) -> None:
  path.parent.mkdir(parents=True, exist_ok=True)
  with atomic.atomic_path(path, suffix=".npz") as tmp:
    np.savez(tmp, **arrays)


def run(config, workdir: str) -> dict:
  """Explains the first `explain.num_images` samples with each seed; returns the summary written
  to `<kind>.json`."""
  workdir, kind = pathlib.Path(workdir), config.heads.kind
  images = explained_images(workdir, int(config.explain.num_images))
  samples, real = images["samples"], images["counterparts"]
  split = pipeline.load_split(config.data, "train", str(workdir))
  train_images = split["image"]
  inputs = head_explainer.Images(
      samples=samples, labels=images["labels"], trajectory_x0=images["trajectory_x0"],
      trajectory_steps=images["trajectory_steps"], train_images=train_images,
      null_pool=null_prototypes.make_pool(split, int(config.explain.null_pool_images), int(config.explain.seed)))
  per_seed, per_seed_real = [], ([] if real is not None else None)
  for k in range(int(config.explain.head_seeds)):
    model, params, record = heads_task.load(config, str(workdir), kind, samples.shape[1], seed_index=k)
    explainer = head_explainer.HeadExplainer(model, params, record, int(config.metrics.batch_size))
    trunk = explainer.trunk_features({"samples": samples, "pool": inputs.null_pool.image, "counterparts": real,
                                      "frames": head_explainer.trajectory_frames(inputs)})
    arrays = head_explainer.explain(explainer, inputs, trunk, config.explain)
    _write_npz(workdir / workdir_lib.explain_seed_file(kind, k), dict(sample_index=np.arange(len(samples)), **arrays))
    per_seed.append(arrays)
    if real is not None:
      window = int(arrays["window"])
      scored = head_explainer.score(explainer, real, train_images, window, trunk["counterparts"])
      real_arrays = {key: scored[key] for key in REAL_KEYS}
      _write_npz(workdir / workdir_lib.explain_seed_file(kind, k, real=True),
                 dict(sample_index=np.arange(len(real)), **real_arrays))
      per_seed_real.append(real_arrays)
  feature_cache.forget()
  first = workdir / workdir_lib.explain_seed_file(kind, 0)
  with atomic.atomic_path(workdir / workdir_lib.explain_file(kind, ".npz"), suffix=".npz") as tmp:
    shutil.copyfile(first, tmp)
  seeds = [int(config.heads.train.seed) + k for k in range(len(per_seed))]
  summary = aggregate.head_summary(per_seed, per_seed_real, images["groups"], seeds, config.explain)
  atomic.write_json(workdir / workdir_lib.explain_file(kind, ".json"), summary)
  return summary
