"""--overwrite removes what the old config made (only what the changed sections feed); sample.py's own
flags are compared and recorded like --config overrides."""

import json
import os
import pathlib
import subprocess
import sys

import pytest

from configs import demo
from mrixai_jax import study
from mrixai_jax import workdir

ROOT = pathlib.Path(__file__).resolve().parents[1]
OUTPUTS = ("checkpoints/10/state", "logs/diffusion/events", "samples/samples.npz", "heads/ppnet/checkpoints/6/state",
           "eval/metrics.json", "explain/ppnet.json", "report/report.md", "stages/data.json",
           "stages/diffusion.json", "stages/samples.json", "stages/heads_ppnet.json", "stages/explain_ppnet.json",
           "stages/evaluate.json")


def _fill(root: pathlib.Path) -> None:
  for rel in OUTPUTS:
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    (root / rel).write_text("made with the old config")


def _left(root: pathlib.Path) -> set:
  return {rel for rel in OUTPUTS if (root / rel).exists()}


def test_changed_sample_key_removes_samples_and_what_depends_on_them(tmp_path):
  config = demo.get_config()
  workdir.check_and_record(config, str(tmp_path), "explain")
  _fill(tmp_path)
  config.sample.num_samples = 7
  removed = workdir.check_and_record(config, str(tmp_path), "explain", overwrite=True)
  assert removed == ["stages/samples.json", "stages/evaluate.json", "stages/explain_ppnet.json",  # markers first
                     "samples", "eval", "explain", "report"]
  assert _left(tmp_path) == {"checkpoints/10/state", "logs/diffusion/events", "heads/ppnet/checkpoints/6/state",
                             "stages/data.json", "stages/diffusion.json", "stages/heads_ppnet.json"}
  assert not (tmp_path / workdir.TRASH).exists()
  assert json.loads((tmp_path / workdir.CONFIG_FILE).read_text())["config"]["sample.num_samples"] == 7
  assert workdir.check_and_record(config, str(tmp_path), "explain") is None  # recorded: nothing differs now


def test_changed_model_key_removes_the_checkpoints_too_and_heads_key_only_heads(tmp_path):
  config = demo.get_config()
  workdir.check_and_record(config, str(tmp_path), "explain")
  _fill(tmp_path)
  config.heads.prototype_dim = 16
  workdir.check_and_record(config, str(tmp_path), "explain", overwrite=True)
  assert _left(tmp_path) == {"checkpoints/10/state", "logs/diffusion/events", "samples/samples.npz",
                             "eval/metrics.json", "stages/data.json", "stages/diffusion.json",
                             "stages/samples.json", "stages/evaluate.json"}
  _fill(tmp_path)
  config.model.layers_per_block = 3
  workdir.check_and_record(config, str(tmp_path), "train", overwrite=True)
  assert _left(tmp_path) == {"heads/ppnet/checkpoints/6/state", "stages/data.json", "stages/heads_ppnet.json"}


def test_interrupted_clear_keeps_the_old_config_recorded_and_is_finished_by_the_next_overwrite(tmp_path, monkeypatch):
  config = demo.get_config()
  workdir.check_and_record(config, str(tmp_path), "explain")
  _fill(tmp_path)
  moves, real_replace = [], os.replace

  def dies_on_third_move(src, dst):
    if len(moves) == 2:
      raise KeyboardInterrupt
    moves.append(src)
    real_replace(src, dst)

  config.diffusion.num_timesteps = 500
  monkeypatch.setattr(os, "replace", dies_on_third_move)
  with pytest.raises(KeyboardInterrupt):
    workdir.check_and_record(config, str(tmp_path), "explain", overwrite=True)
  monkeypatch.setattr(os, "replace", real_replace)
  assert len(moves) == 2 and (tmp_path / workdir.TRASH).is_dir()  # half-cleared, trash left behind
  with pytest.raises(workdir.WorkdirConfigError, match=r"diffusion.num_timesteps \(1000 -> 500\)"):
    workdir.check_and_record(config, str(tmp_path), "explain")  # the half state is not trusted
  removed = workdir.check_and_record(config, str(tmp_path), "explain", overwrite=True)
  assert removed == ["stages/evaluate.json", "stages/explain_ppnet.json", "checkpoints", "logs", "samples", "eval",
                     "explain", "report"]  # stages/diffusion.json, stages/samples.json went before the interruption
  assert _left(tmp_path) == {"heads/ppnet/checkpoints/6/state", "stages/data.json", "stages/heads_ppnet.json"}
  assert not (tmp_path / workdir.TRASH).exists()


def test_study_reruns_stages_whose_markers_overwrite_removed(tmp_path):
  calls = []
  stages = [study.Stage(name, lambda name=name: calls.append(name))
            for name in ("data", "diffusion", "samples", "heads/ppnet", "evaluate")]
  config = demo.get_config()
  workdir.check_and_record(config, str(tmp_path), "explain")
  study.run_stages(stages, tmp_path)
  config.sample.seed = 5
  workdir.check_and_record(config, str(tmp_path), "explain", overwrite=True)
  timings = study.run_stages(stages, tmp_path)
  assert calls == ["data", "diffusion", "samples", "heads/ppnet", "evaluate", "samples", "evaluate"]
  assert [name for name, t in timings.items() if not t["reused"]] == ["samples", "evaluate"]


def _sample_py(workdir_path, *flags, masks="no_masks"):
  return subprocess.run([sys.executable, "sample.py", "--config=configs/demo.py", f"--workdir={workdir_path}",
                         f"--masks={workdir_path}/{masks}", *flags], cwd=ROOT, capture_output=True, text=True,
                        timeout=300)


def test_sample_py_flags_are_recorded_compared_and_overwrite_removes_old_samples(tmp_path):
  first = _sample_py(tmp_path, "--num_samples=3", "--steps=20")
  assert first.returncode == 2 and "no_masks is not a folder" in first.stderr  # main ran after the record
  recorded = json.loads((tmp_path / workdir.CONFIG_FILE).read_text())["config"]
  assert recorded["sample.num_samples"] == 3 and recorded["sample.num_steps"] == 20
  assert recorded["sample.masks"] == str(tmp_path / "no_masks")

  refused = _sample_py(tmp_path, "--num_samples=4", "--steps=20")
  last = refused.stderr.strip().splitlines()[-1]
  print(last)
  assert refused.returncode == 2 and "Traceback" not in refused.stderr
  assert "holds a run with a different config: sample.num_samples (3 -> 4); pass --overwrite" in last

  for rel in ("samples/samples.npz", "stages/samples.json", "checkpoints/10/state"):
    (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / rel).write_text("old")
  replaced = _sample_py(tmp_path, "--num_samples=4", "--steps=20", "--overwrite")
  print(replaced.stderr.strip().splitlines()[0])
  assert f"sample.py: --overwrite: removed what the old config made in {tmp_path}: stages/samples.json, samples" \
      in replaced.stderr
  assert not (tmp_path / "samples").exists() and (tmp_path / "checkpoints/10/state").exists()
  assert json.loads((tmp_path / workdir.CONFIG_FILE).read_text())["config"]["sample.num_samples"] == 4

  other_masks = _sample_py(tmp_path, "--num_samples=4", "--steps=20", masks="other_masks")
  assert other_masks.returncode == 2
  assert f"sample.masks ('{tmp_path}/no_masks' -> '{tmp_path}/other_masks')" in other_masks.stderr
