"""The config a workdir was run with, saved in `WORKDIR/config.json`, and the check against a later start.

Each entry point compares the sections its results depend on (`SECTIONS`); a section is compared
only once some entry point has used it in this workdir (so `train.py` followed by `sample.py` with
another `sample.num_samples` is fine, but a second `sample.py` with yet another one is not). Keys
that change no result (`IGNORED`: logging, checkpoint cadence, file locations, parallelism, memory
for speed) are never compared. A mismatch is a `WorkdirConfigError` naming the differing keys.

Raising `train.num_steps` alone (both positive, for `train.py` or the study) extends the run: the
training checkpoints and logs stay, training resumes from the last checkpoint with the learning-rate
schedule ending at the new step count, and what was computed from the shorter run (`EXTENSION_KEEPS`
aside: samples, tables, explanations, the report, the diffusion stage marker) is removed; one log
line says so.

`--overwrite` accepts the new config: first every output computed from a changed section
(`PRODUCTS`: checkpoints, samples, heads, study stage markers, ...; the markers first) is renamed
into `WORKDIR/.overwritten/` and that folder deleted, then the new config is recorded. An interrupted
clear therefore leaves the old config recorded (the next start asks for `--overwrite` again and
finishes the clear); nothing made with the old config is reused under the new one.

Later starts build on the record: without `--overwrite`, every recorded key that the command line does
not set takes its recorded value (`apply_recorded`; `PER_INVOCATION` keys aside), and `--config` may be
left out (the recorded `config_file` is used). So `sample.py --workdir=W` after a `train.py` run with
overrides samples that run without repeating them.

File schema: `{"config": {dotted key: value}, "used_sections": [section, ...], "config_file": path}`,
written atomically (`config_file`: the absolute path of the last `--config`; absent in older records).
"""

import glob
import json
import os
import shutil

from absl import logging

from mrixai_jax import atomic
from mrixai_jax import errors
from mrixai_jax import overrides

CONFIG_FILE = "config.json"
CONFIG_FILE_KEY = "config_file"
# Chosen per command (what to train, which head, how to launch), never taken from the record.
PER_INVOCATION = frozenset({"task", "heads.kind", "heads.seed_index", "distributed.initialize"})

# Sections whose values change what each entry point writes; None: every section (the study runs all).
SECTIONS = {
    "train": ("seed", "data", "model", "diffusion", "train", "heads"),
    "sample": ("seed", "data", "model", "diffusion", "train", "sample", "metrics"),
    "explain": None,
}

IGNORED = frozenset({
    "task", "heads.kind", "heads.seed_index", "distributed.initialize", "data.tfds_dir", "data.manual_dir", "data.prefetch",
    "model.remat", "train.log_every", "train.checkpoint_every", "train.keep_checkpoints", "train.sample_every",
    "train.sample_grid_size", "train.sample_grid_steps", "heads.train.log_every", "heads.train.checkpoint_every",
    "heads.train.keep_checkpoints", "heads.train.feature_cache_mb",
})
_MAX_LISTED = 8

# Every path the stages write and read, relative to WORKDIR.
CHECKPOINTS_SUBDIR = "checkpoints"  # the diffusion model's Orbax checkpoints (training/loop.py)
LOGS_SUBDIR = "logs"  # TensorBoard logs of the diffusion model (logs/diffusion)
TRAIN_SAMPLES_SUBDIR = "train_samples"  # sample grids during training (training/diffusion_task.py)
SAMPLES_SUBDIR = "samples"  # stages/sample.py (mrixai_jax/generate.py)
SAMPLES_FILE = os.path.join(SAMPLES_SUBDIR, "samples.npz")
HEADS_SUBDIR = "heads"  # heads/<kind>[/seed<k>]/{checkpoints,logs,push.*,prototype_gallery.png} (heads_task.py)
EXPLAIN_SUBDIR = "explain"  # explain/<kind>.{npz,json}, explain/<kind>/seed<k>[_real].npz (stages/explain.py)
EVAL_SUBDIR = "eval"  # eval/metrics.{json,md} (mrixai_jax/evaluate.py)
EVAL_FILE = os.path.join(EVAL_SUBDIR, "metrics.json")
REPORT_SUBDIR = "report"  # report/{report.md,report.json,*.png} (stages/report.py)
STAGES_SUBDIR = "stages"  # the study's completion markers stages/<stage>.json (mrixai_jax/study.py)


def head_subdir(kind: str, seed_index: int = 0) -> str:
  """`heads/<kind>` (seed index 0) or `heads/<kind>/seed<k>`: one trained prototype head's outputs."""
  base = os.path.join(HEADS_SUBDIR, kind)
  return base if seed_index == 0 else os.path.join(base, f"seed{seed_index}")


def explain_file(kind: str, suffix: str) -> str:
  """`explain/<kind><suffix>` (".npz": the first seed's per-image arrays, ".json": the summary)."""
  return os.path.join(EXPLAIN_SUBDIR, kind + suffix)


def explain_seed_file(kind: str, seed_index: int, real: bool = False) -> str:
  """`explain/<kind>/seed<k>.npz` (the samples) or `seed<k>_real.npz` (their real counterparts)."""
  return os.path.join(EXPLAIN_SUBDIR, kind, f"seed{seed_index}{'_real' if real else ''}.npz")


def stage_marker(name: str) -> str:
  """`stages/<name>.json` ("/" in a stage name becomes "_")."""
  return os.path.join(STAGES_SUBDIR, name.replace("/", "_") + ".json")


# What each output in a workdir is computed from: (globs relative to WORKDIR, config sections or
# dotted keys; None: every section).
_DIFFUSION = ("seed", "data", "model", "diffusion", "train")
_SAMPLES = _DIFFUSION + ("sample",)
_HEADS = ("seed", "data", "heads")
PRODUCTS = (
    ((stage_marker("data"),), ("seed", "data")),
    ((CHECKPOINTS_SUBDIR, LOGS_SUBDIR, TRAIN_SAMPLES_SUBDIR, stage_marker("diffusion")), _DIFFUSION),
    ((SAMPLES_SUBDIR, stage_marker("samples")), _SAMPLES),
    ((HEADS_SUBDIR, stage_marker("heads/*")), _HEADS),
    ((stage_marker("heads/*"),), ("explain.head_seeds",)),  # a heads stage trains every seed; trained ones stay
    ((EVAL_SUBDIR, stage_marker("evaluate")), _SAMPLES + ("metrics",)),
    ((EXPLAIN_SUBDIR, stage_marker("explain/*")), _SAMPLES + _HEADS + ("metrics", "explain")),
    ((REPORT_SUBDIR,), None),
)
EXTENDABLE = "train.num_steps"  # raising it alone continues the run (module docstring)
EXTENSION_KEEPS = (CHECKPOINTS_SUBDIR, LOGS_SUBDIR, TRAIN_SAMPLES_SUBDIR)  # outputs of the shorter run that stay
TRASH = ".overwritten"


class WorkdirConfigError(errors.UserError):
  """The workdir holds outputs of a run with a different config."""


def _section(key: str) -> str:
  return key.split(".", 1)[0]


def stale_outputs(workdir: str, changed) -> list:
  """Paths relative to `workdir` of the existing outputs computed from any of `changed` (sections and
  dotted keys); the study's stage markers first (removed first, so a half-done clear never leaves a
  marker that vouches for a removed output)."""
  changed = set(changed)
  stale = []
  for patterns, sections in PRODUCTS:
    if sections is None or changed & set(sections):
      for pattern in patterns:
        stale += sorted(os.path.relpath(p, workdir) for p in glob.glob(os.path.join(workdir, pattern)))
  return sorted(stale, key=lambda rel: not rel.startswith(STAGES_SUBDIR + os.sep))


def remove_outputs(workdir: str, relative_paths) -> None:
  """Renames each path into `WORKDIR/.overwritten/` (a leftover one is deleted first), then deletes that folder."""
  trash = os.path.join(workdir, TRASH)
  shutil.rmtree(trash, ignore_errors=True)
  os.makedirs(trash)
  for rel in relative_paths:
    os.replace(os.path.join(workdir, rel), os.path.join(trash, rel.replace(os.sep, "__")))
  shutil.rmtree(trash)


def _is_extension(differing: list, old: dict, current: dict, entry_point: str) -> bool:
  """Only `train.num_steps` differs, both values positive and the new one larger, for train/explain."""
  return (differing == [EXTENDABLE] and entry_point in ("train", "explain")
          and isinstance(old.get(EXTENDABLE), int) and 0 < old[EXTENDABLE] < current[EXTENDABLE])


def read_record(workdir: str) -> dict:
  """The parsed `WORKDIR/config.json` (`{"config": {}, "used_sections": []}` when there is none)."""
  path = os.path.join(workdir, CONFIG_FILE)
  if not os.path.exists(path):
    return {"config": {}, "used_sections": []}
  try:
    with open(path) as f:
      stored = json.load(f)
  except ValueError as e:
    raise WorkdirConfigError(f"{path} is not valid JSON ({e}); delete it or use a new --workdir") from e
  if not isinstance(stored, dict) or not {"config", "used_sections"} <= stored.keys():
    raise WorkdirConfigError(f"{path} lacks 'config'/'used_sections'; delete it or use a new --workdir")
  return stored


def recorded_config_file(workdir: str):
  """The `--config` file the workdir's last start used, or None (no record, or an older one)."""
  return read_record(workdir).get(CONFIG_FILE_KEY)


def apply_recorded(config, workdir: str, given_keys) -> list:
  """Sets every recorded key of `WORKDIR/config.json` that is not in `given_keys` (set on the command
  line) nor `PER_INVOCATION` to its recorded value, in place. Returns the keys whose value changed
  (the config file said otherwise), sorted."""
  current = overrides.flatten(json.loads(config.to_json_best_effort()))
  recorded = {k: v for k, v in read_record(workdir)["config"].items()
              if k in current and k not in PER_INVOCATION and k not in set(given_keys)}
  changed = sorted(k for k, v in recorded.items() if current[k] != v)
  overrides.set_values(config, {k: recorded[k] for k in changed})
  return changed


def check_and_record(config, workdir: str, entry_point: str, overwrite: bool = False, config_file=None):
  """Raises `WorkdirConfigError` if `config` differs from `WORKDIR/config.json` in a compared key; then records it.

  `entry_point`: a key of `SECTIONS` ("train", "sample", "explain"); others compare every section.
  With `overwrite`, a differing config first removes the outputs of the changed sections
  (`stale_outputs`, `remove_outputs`). Returns the removed paths (relative to `workdir`) when
  `overwrite` replaced a different config, else None. `config_file`: the `--config` path to record.
  """
  current = overrides.flatten(json.loads(config.to_json_best_effort()))
  sections = SECTIONS.get(entry_point) or sorted({_section(k) for k in current})
  path = os.path.join(workdir, CONFIG_FILE)
  stored = read_record(workdir)
  old = stored["config"]
  compared = set(sections) & set(stored["used_sections"])
  differing = sorted(k for k in set(old) | set(current)
                     if _section(k) in compared and k not in IGNORED and old.get(k) != current.get(k))
  if _is_extension(differing, old, current, entry_point):
    removed = [rel for rel in stale_outputs(workdir, {"train"}) if rel.split(os.sep)[0] not in EXTENSION_KEEPS]
    remove_outputs(workdir, removed)
    logging.info("%s %d -> %d: training continues from the last checkpoint in %s with the learning-rate schedule "
                 "ending at step %d%s", EXTENDABLE, old[EXTENDABLE], current[EXTENDABLE], workdir, current[EXTENDABLE],
                 f"; removed what the shorter run made: {', '.join(removed)}" if removed else "")
    differing = []
  if differing and not overwrite:
    listed = ", ".join(f"{k} ({old.get(k)!r} -> {current.get(k)!r})" for k in differing[:_MAX_LISTED])
    more = f" and {len(differing) - _MAX_LISTED} more" if len(differing) > _MAX_LISTED else ""
    raise WorkdirConfigError(f"{workdir} holds a run with a different config: {listed}{more}; "
                             f"pass --overwrite to continue it with this config, or use a new --workdir")
  removed = None
  if differing:
    removed = stale_outputs(workdir, set(differing) | {_section(k) for k in differing})
    remove_outputs(workdir, removed)
  record = {k: v for k, v in old.items() if _section(k) not in sections}
  record.update({k: v for k, v in current.items() if _section(k) in sections})
  new = {"config": dict(sorted(record.items())), "used_sections": sorted(set(stored["used_sections"]) | set(sections))}
  config_file = os.path.abspath(config_file) if config_file else stored.get(CONFIG_FILE_KEY)
  if config_file:
    new[CONFIG_FILE_KEY] = config_file
  if new != stored:
    os.makedirs(workdir, exist_ok=True)
    atomic.write_json(path, new)
  return removed
