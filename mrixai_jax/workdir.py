"""The config a workdir was run with, saved in `WORKDIR/config.json`, and the check against a later start.

Each entry point compares the sections its results depend on (`SECTIONS`); a section is compared
only once some entry point has used it in this workdir (so `train.py` followed by `sample.py` with
another `sample.num_samples` is fine, but a second `sample.py` with yet another one is not). Keys
that change no result (`IGNORED`: logging, checkpoint cadence, file locations, parallelism) are
never compared. A mismatch is a `WorkdirConfigError` naming the differing keys; `--overwrite`
accepts the new config and records it (outputs already in the workdir are still reused: delete
them, or use a new workdir, to recompute them).

File schema: `{"config": {dotted key: value}, "used_sections": [section, ...]}`, written atomically.
"""

import json
import os

from mrixai_jax import errors
from mrixai_jax.report import atomic

CONFIG_FILE = "config.json"

# Sections whose values change what each entry point writes; None: every section (the study runs all).
SECTIONS = {
    "train": ("seed", "data", "model", "diffusion", "train", "heads"),
    "sample": ("seed", "data", "model", "diffusion", "train", "sample", "metrics"),
    "explain": None,
}

IGNORED = frozenset({
    "task", "heads.kind", "distributed.initialize", "data.tfds_dir", "data.manual_dir", "data.prefetch",
    "model.remat", "train.log_every", "train.checkpoint_every", "train.keep_checkpoints", "train.sample_every",
    "train.sample_grid_size", "train.sample_grid_steps", "heads.train.log_every", "heads.train.checkpoint_every",
    "heads.train.keep_checkpoints",
})
_MAX_LISTED = 8


class WorkdirConfigError(errors.UserError):
  """The workdir holds outputs of a run with a different config."""


def _flatten(tree: dict, prefix: str = "") -> dict:
  flat = {}
  for key, value in tree.items():
    name = f"{prefix}{key}"
    if isinstance(value, dict):
      flat.update(_flatten(value, name + "."))
    else:
      flat[name] = value
  return flat


def _section(key: str) -> str:
  return key.split(".", 1)[0]


def check_and_record(config, workdir: str, entry_point: str, overwrite: bool = False) -> None:
  """Raises `WorkdirConfigError` if `config` differs from `WORKDIR/config.json` in a compared key; then records it.

  `entry_point`: a key of `SECTIONS` ("train", "sample", "explain"); others compare every section.
  """
  current = _flatten(json.loads(config.to_json_best_effort()))
  sections = SECTIONS.get(entry_point) or sorted({_section(k) for k in current})
  path = os.path.join(workdir, CONFIG_FILE)
  stored = {"config": {}, "used_sections": []}
  if os.path.exists(path):
    try:
      with open(path) as f:
        stored = json.load(f)
    except ValueError as e:
      raise WorkdirConfigError(f"{path} is not valid JSON ({e}); delete it or use a new --workdir") from e
    if not isinstance(stored, dict) or not {"config", "used_sections"} <= stored.keys():
      raise WorkdirConfigError(f"{path} lacks 'config'/'used_sections'; delete it or use a new --workdir")
  old = stored["config"]
  compared = set(sections) & set(stored["used_sections"])
  differing = sorted(k for k in set(old) | set(current)
                     if _section(k) in compared and k not in IGNORED and old.get(k) != current.get(k))
  if differing and not overwrite:
    listed = ", ".join(f"{k} ({old.get(k)!r} -> {current.get(k)!r})" for k in differing[:_MAX_LISTED])
    more = f" and {len(differing) - _MAX_LISTED} more" if len(differing) > _MAX_LISTED else ""
    raise WorkdirConfigError(f"{workdir} holds a run with a different config: {listed}{more}; "
                             f"pass --overwrite to continue it with this config, or use a new --workdir")
  record = {k: v for k, v in old.items() if _section(k) not in sections}
  record.update({k: v for k, v in current.items() if _section(k) in sections})
  new = {"config": dict(sorted(record.items())), "used_sections": sorted(set(stored["used_sections"]) | set(sections))}
  if new != stored:
    os.makedirs(workdir, exist_ok=True)
    atomic.write_json(path, new)
