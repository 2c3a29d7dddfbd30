"""End to end: the whole study with a tiny config in a temp dir, then a second run that reuses it."""

import json
import math
import time

import numpy as np
import pytest

from configs import demo
from mrixai_jax import study

HEADS = ("ppnet", "eppnet", "protopool")


def tiny_config():
  c = demo.get_config()
  c.data.image_size = 32
  c.data.num_slices = 64
  m = c.model
  m.block_out_channels = (16, 32)
  m.down_block_types = ("DownBlock2D", "AttnDownBlock2D")
  m.up_block_types = ("AttnUpBlock2D", "UpBlock2D")
  m.norm_num_groups = 8
  c.train.batch_size = 8
  c.train.num_steps = 6
  c.train.warmup_steps = 2
  c.train.checkpoint_every = 6
  c.train.log_every = 3
  c.train.sample_every = 0
  c.sample.num_samples = 8
  c.sample.batch_size = 8
  c.sample.num_steps = 4
  c.sample.trajectory_steps = (0, 2, 3)
  c.heads.backbone = "small_cnn"
  c.heads.small_cnn_channels = (8, 16)
  c.heads.prototypes_per_class = 2
  c.heads.prototype_dim = 8
  c.heads.protopool.num_slots = 2
  c.heads.train.batch_size = 8
  c.heads.train.push_batch_size = 16
  c.heads.train.num_steps = 6
  c.heads.train.warm_steps = 2
  c.heads.train.last_layer_steps = 2
  c.heads.train.checkpoint_every = 6
  c.heads.train.log_every = 3
  c.explain.num_images = 8
  c.explain.bootstrap_samples = 100
  c.explain.deletion_random_windows = 2
  c.explain.head_seeds = 2
  c.explain.null_draws = 20
  c.explain.null_pool_images = 16
  c.metrics.fid = False
  c.metrics.batch_size = 8
  return c


def _finite_numbers(tree):
  if isinstance(tree, dict):
    return all(_finite_numbers(v) for v in tree.values())
  if isinstance(tree, (list, tuple)):
    return all(_finite_numbers(v) for v in tree)
  return not isinstance(tree, float) or math.isfinite(tree)


def test_study_runs_end_to_end_and_reuses_stages(tmp_path):
  config = tiny_config()
  first_start = time.perf_counter()
  report = study.run(config, str(tmp_path))
  first = time.perf_counter() - first_start
  out = tmp_path / "report"
  for name in ("report.md", "report.json", "faithfulness.png", "nis_per_prototype.png", "emergence.png",
               "faithfulness_by_window.png", "intensity_histograms.png"):
    assert (out / name).stat().st_size > 0, name
  for kind in HEADS:
    assert (tmp_path / "heads" / kind / "prototype_gallery.png").exists()
    with np.load(tmp_path / "explain" / f"{kind}.npz") as f:
      nis, rho, faith = f["nis"], f["rho"], f["faithfulness"]
      np.testing.assert_allclose(nis.sum(1), 1.0, atol=1e-5)
      assert np.all(np.abs(rho) <= 1 + 1e-6) and np.all(np.abs(faith) <= 1 + 1e-6)
      assert f["firing_window"].shape == nis.shape + (4,)
    explained = tmp_path / "explain" / kind
    assert (tmp_path / "explain" / f"{kind}.npz").read_bytes() == (explained / "seed0.npz").read_bytes()
    assert (tmp_path / "heads" / kind / "seed1" / "push.json").exists()
    with np.load(explained / "seed1.npz") as seed1, np.load(explained / "seed1_real.npz") as real:
      assert real["faithfulness"].shape == seed1["faithfulness"].shape == (8,)
      assert not np.array_equal(seed1["nis"], nis)  # another training seed, another head
  saved = json.loads((out / "report.json").read_text())
  with np.load(tmp_path / "samples" / "samples.npz") as f:
    steps = f["trajectory_steps"].tolist()
  assert set(saved["faithfulness"]) == set(HEADS)
  for kind in HEADS:
    f = saved["faithfulness"][kind]
    assert f["seeds"] == [0, 1] and len(f["per_seed_mean"]) == 2
    assert f["mean"] == pytest.approx(np.mean(f["per_seed_mean"]))
    assert f["ci95"][0] <= f["mean"] <= f["ci95"][1]
    assert math.isfinite(f["real"]["mean"]) and 0 < f["generated_minus_real"]["p_value"] <= 1
    assert f["generated_minus_real"]["mean"] == pytest.approx(f["mean"] - f["real"]["mean"])
    assert 1 <= f["nis"]["effective_prototypes"] <= 6
    assert set(f["nis"]) == {"mean_rho", "top1_rho", "entropy", "effective_prototypes"}
    windows = [int(size) for size in f["by_window"]]
    assert f["window"] in windows and windows == sorted(windows) and min(windows) >= 2
    assert f["by_window"][str(f["window"])]["mean"] == pytest.approx(f["mean"])
    assert f["null"]["draws"] == 20 and 1 / 21 <= f["null"]["p_value"] <= 1
    assert set(f["deletion"]) == {"drop_top", "drop_random", "ci95_diff", "p_value"}
    assert f["deletion"]["drop_top"] == pytest.approx(f["deletion_drop_top"])
    assert 0 <= f["tissue_purity"]["value"] <= 1 and 0 < f["tissue_purity"]["chance"] < 1
    assert {"value", "ci95"} <= set(f["emergence"]) and f["emergence"]["steps"] == steps
    assert len(f["emergence"]["curve"]) == len(steps)
  pairs = saved["faithfulness_comparisons"]
  assert [(r["a"], r["b"]) for r in pairs] == [("ppnet", "eppnet"), ("ppnet", "protopool"), ("eppnet", "protopool")]
  assert all(r["p_value"] <= r["p_holm"] <= 1 for r in pairs)
  markdown = (out / "report.md").read_text()
  assert all(f"Holm p = {r['p_holm']:.4f}" in markdown for r in pairs)
  for kind in HEADS:
    for key in ("mean", "sd", "randomized_mean", "deletion_drop_top", "deletion_drop_random"):
      assert math.isfinite(saved["faithfulness"][kind][key]), (kind, key)
  for key in ("psnr", "ssim", "lpips"):
    assert math.isfinite(saved["quality"][key]["mean"])
  assert math.isfinite(saved["dice"]["mean"])
  refs = saved["quality_reference"]
  for reference in ("shuffled_real", "noise_oracle"):
    assert all(math.isfinite(refs[reference][key]["mean"]) for key in ("psnr", "ssim", "lpips")), (reference, refs)
  assert refs["noise_oracle"]["psnr"]["mean"] > refs["shuffled_real"]["psnr"]["mean"]  # ceiling above chance
  assert math.isfinite(refs["real_vs_real"]["fd_vgg"])
  assert set(saved["intensity"]) == {"background", "fat", "fgt", "vessels"}
  assert all(set(v) == {"sample_mean", "real_mean", "diff", "train_mean", "train_diff"} for v in saved["intensity"].values())
  assert _finite_numbers(saved["faithfulness"]) and report["faithfulness"].keys() == saved["faithfulness"].keys()

  second_start = time.perf_counter()
  again = study.run(config, str(tmp_path))
  second = time.perf_counter() - second_start
  assert again["faithfulness"] == saved["faithfulness"]
  assert second < first / 2, (first, second)


def test_interrupted_stage_has_no_marker_and_reruns(tmp_path):
  calls = []

  def fails():
    calls.append("fail")
    raise KeyboardInterrupt

  with pytest.raises(KeyboardInterrupt):
    study.run_stages([study.Stage("a", lambda: calls.append("a")), study.Stage("b", fails)], tmp_path)
  timings = study.run_stages([study.Stage("a", lambda: calls.append("a2")),
                              study.Stage("b", lambda: calls.append("b"))], tmp_path)
  assert calls == ["a", "fail", "b"]
  assert timings["a"]["reused"] and not timings["b"]["reused"]


def test_a_marker_of_an_older_output_version_reruns_its_stage(tmp_path):
  calls = []
  study.run_stages([study.Stage("a", lambda: calls.append("a0"))], tmp_path)  # version 0 (no field)
  study.run_stages([study.Stage("a", lambda: calls.append("a0 again"))], tmp_path)
  study.run_stages([study.Stage("a", lambda: calls.append("a1"), output_version=1)], tmp_path)
  timings = study.run_stages([study.Stage("a", lambda: calls.append("a1 again"), output_version=1)], tmp_path)
  assert calls == ["a0", "a1"] and timings["a"]["reused"]
