"""sample.py end to end on a tiny checkpoint saved with the training checkpoint API."""

import importlib.util
import os
import pathlib
import shutil
import subprocess
import sys

import jax
import numpy as np
import optax
import pydicom
import pytest
from PIL import Image

from mrixai_jax import config_validation, generate, xla_flags
from mrixai_jax.models import unet
from mrixai_jax.training import checkpoint
from mrixai_jax.training import state as state_lib

REPO = pathlib.Path(__file__).resolve().parents[1]
SIZE = 16
TINY_CONFIG = f"""
from configs import demo

def get_config():
  c = demo.get_config()
  c.data.image_size = {SIZE}
  m = c.model
  m.block_out_channels = (8, 16)
  m.down_block_types = ("DownBlock2D", "AttnDownBlock2D")
  m.up_block_types = ("AttnUpBlock2D", "UpBlock2D")
  m.norm_num_groups = 4
  m.attention_head_dim = 4
  s = c.sample
  s.num_samples = 5
  s.batch_size = 4
  s.num_steps = 4
  s.trajectory_steps = (0, 2, -1)
  s.trajectory_num_steps = 4
  return c
"""


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
  """A workdir holding a tiny checkpoint (random weights) and a folder of 3 NPY masks."""
  root = tmp_path_factory.mktemp("sample_cli")
  (root / "tiny.py").write_text(TINY_CONFIG)
  spec = importlib.util.spec_from_file_location("tiny_config", root / "tiny.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config()
  model = unet.build_model(config)
  # Random weights from the init's shapes (eval_shape: no slow un-jitted init on CPU).
  shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0), np.zeros((1, SIZE, SIZE, 1), np.float32),
                          np.zeros((1,), np.int32), np.zeros((1, SIZE, SIZE, 3), np.float32))["params"]
  leaves, tree = jax.tree_util.tree_flatten(shapes)
  rng = np.random.default_rng(0)
  params = tree.unflatten([(0.1 * rng.normal(size=s.shape)).astype(np.float32) for s in leaves])
  state = state_lib.create(params, {"train": optax.adamw(1e-3).init(params)}, jax.random.PRNGKey(1))
  ckpt = checkpoint.Checkpointer(str(root / "work" / checkpoint.DIFFUSION_SUBDIR), keep=1)
  ckpt.save(7, state, {"epoch": 0, "batch": 0})
  ckpt.close()
  masks = root / "masks"
  masks.mkdir()
  for i in range(3):
    np.save(masks / f"mask_{i}.npy", rng.integers(0, 4, size=(SIZE, SIZE)).astype(np.uint8))
  return root, config


def _sample_py(root, *flags, workdir=None):
  workdir = workdir or root / "work"
  cmd = [sys.executable, "sample.py", f"--config={root / 'tiny.py'}", f"--workdir={workdir}", *flags]
  return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)


def test_sample_py_writes_samples_figures_and_dicom(run_dir):
  root, config = run_dir
  proc = _sample_py(root, f"--masks={root / 'masks'}", "--steps=4", "--seed=3", "--dicom")
  assert proc.returncode == 0, proc.stderr
  assert "sample: 5 images, ddim with 4 steps" in proc.stderr  # short pass: the progress line is at DEBUG
  assert "sample: wrote 5 images to" in proc.stdout and "img/s" in proc.stdout
  out = root / "work" / "samples"
  with np.load(out / "samples.npz") as npz:
    data = dict(npz)
  n, k = 5, 3
  assert data["samples"].shape == (n, SIZE, SIZE, 1) and np.isfinite(data["samples"]).all()
  assert np.abs(data["samples"]).max() <= 1.0
  for name in ("trajectory_xt", "trajectory_eps_norm", "trajectory_x0"):
    assert data[name].shape == (n, k, SIZE, SIZE, 1)
  np.testing.assert_array_equal(data["trajectory_steps"], [0, 2, 3])
  np.testing.assert_array_equal(data["trajectory_timesteps"], [999, 499, 249])  # DDIM-4 trailing (demo): 999..249
  assert list(data["mask_source"]) == ["mask_0.npy", "mask_1.npy", "mask_2.npy", "mask_0.npy", "mask_1.npy"]
  masks = [np.load(root / "masks" / name) for name in data["mask_source"]]
  np.testing.assert_array_equal(data["labels"], np.stack(masks))
  assert "counterparts" not in data and data["nonfinite_index"].size == 0
  assert int(data["checkpoint_step"]) == 7 and str(data["sampler"]) == "ddim" and int(data["seed"]) == 3
  for png in ("grid.png", "trajectory.png"):
    with Image.open(out / png) as image:
      assert image.format == "PNG"
  dicoms = sorted((out / "dicom").glob("*.dcm"))
  assert len(dicoms) == n
  ds = pydicom.dcmread(dicoms[1])
  assert "DERIVED" in ds.ImageType and "SYNTHETIC" in ds.SeriesDescription
  stored = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
  np.testing.assert_allclose(stored, data["samples"][1, ..., 0], atol=1.0 / 65535 + 1e-6)

  # The same run in-process with another batch size gives the same images (per-image keys).
  config = config.copy_and_resolve_references()
  config.sample.seed, config.sample.batch_size, config.sample.write_dicom = 3, 8, False
  generate.run(config, str(root / "work"), masks_path=root / "masks")
  with np.load(out / "samples.npz") as npz:
    # float32 reductions differ with the batch shape; 1e-4 is far below the images' spread.
    np.testing.assert_allclose(npz["samples"], data["samples"], rtol=0, atol=1e-4)


def test_sample_py_shards_over_one_host_device_per_core(run_dir, tmp_path):
  """Without XLA_FLAGS from the user, sample.py (small images) runs one CPU device per core that
  divides every batch size (xla_flags.host_device_count), and the images equal a 4-device run's."""
  root, config = run_dir
  shutil.copytree(root / "work" / checkpoint.DIFFUSION_SUBDIR, tmp_path / checkpoint.DIFFUSION_SUBDIR)
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  cmd = [sys.executable, "sample.py", f"--config={root / 'tiny.py'}", f"--workdir={tmp_path}", "--seed=5"]
  proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600, env=env)
  assert proc.returncode == 0, proc.stderr
  expected = xla_flags.host_device_count(SIZE, config_validation.batch_sizes(config), xla_flags.usable_cpus())
  assert f"{expected} device(s)" in proc.stderr
  with np.load(tmp_path / "samples" / "samples.npz") as npz:
    ours = npz["samples"]
  config = config.copy_and_resolve_references()
  config.sample.seed = 5
  generate.run(config, str(tmp_path))  # in-process: the tests' 4 forced host devices
  with np.load(tmp_path / "samples" / "samples.npz") as npz:
    np.testing.assert_allclose(npz["samples"], ours, rtol=0, atol=1e-4)


@pytest.mark.parametrize("flags,problem", [
    (["--masks={root}/nowhere"], "is not a folder"),
    (["--masks={root}/bad"], "bad.npy: label values [9] outside"),
    (["--steps=0"], "config.sample.num_steps: 0 must be in"),
    (["--num_samples=0"], "config.sample.num_samples: must be positive"),
])
def test_sample_py_bad_input_is_one_line(run_dir, flags, problem, tmp_path):
  root, _ = run_dir
  bad = root / "bad"
  bad.mkdir(exist_ok=True)
  np.save(bad / "bad.npy", np.full((SIZE, SIZE), 9, np.uint8))
  # A fresh workdir: in root/work other sample flags would be refused first (recorded config); these
  # errors come before any checkpoint is read.
  proc = _sample_py(root, *(f.format(root=root) for f in flags), workdir=tmp_path)
  assert proc.returncode == 2
  lines = proc.stderr.strip().splitlines()
  assert len(lines) == 1 and problem in lines[0], proc.stderr


def test_sample_py_without_checkpoint_is_one_line(run_dir, tmp_path):
  root, _ = run_dir
  proc = subprocess.run([sys.executable, "sample.py", f"--config={root / 'tiny.py'}", f"--workdir={tmp_path}",
                         f"--masks={root / 'masks'}"], cwd=REPO, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 2
  lines = proc.stderr.strip().splitlines()
  assert len(lines) == 1 and "checkpoint" in lines[0], proc.stderr


def test_ddpm_run_rescales_trajectory_and_reports_non_finite_images(run_dir, tmp_path, capsys):
  root, config = run_dir
  params, _ = checkpoint.load_inference_params(str(root / "work"))
  params = jax.tree_util.tree_map(np.asarray, params)
  params["conv_out"]["bias"] = np.full_like(params["conv_out"]["bias"], np.nan)  # every image becomes NaN
  state = state_lib.create(params, {"train": optax.adamw(1e-3).init(params)}, jax.random.PRNGKey(1))
  ckpt = checkpoint.Checkpointer(str(tmp_path / checkpoint.DIFFUSION_SUBDIR), keep=1)
  ckpt.save(1, state, {"epoch": 0, "batch": 0})
  ckpt.close()
  config = config.copy_and_resolve_references()
  config.sample.sampler, config.diffusion.num_timesteps, config.sample.num_samples = "ddpm", 20, 3
  summary = generate.run(config, str(tmp_path), masks_path=root / "masks")
  assert summary["nonfinite_index"] == [0, 1, 2]
  assert "3 image(s) have non-finite values (NaN/Inf): indices [0, 1, 2]" in capsys.readouterr().err
  with np.load(tmp_path / "samples" / "samples.npz") as npz:
    # trajectory_steps (0, 2, -1) were written for 4 steps; DDPM over T = 20 runs 20 steps.
    np.testing.assert_array_equal(npz["trajectory_steps"], [0, 13, 19])
    np.testing.assert_array_equal(npz["trajectory_timesteps"], [19, 6, 0])
    np.testing.assert_array_equal(npz["nonfinite_index"], [0, 1, 2])
    assert int(npz["num_steps"]) == 20 and str(npz["sampler"]) == "ddpm"
