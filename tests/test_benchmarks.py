"""benchmarks/run.py: ours is checked against the peers before anything is timed, a mismatch is
never timed, and a tiny end-to-end run writes the ARCHITECTURE.md schema. No timing assertions."""

import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from benchmarks import common, run, specs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCHEMA_KEYS = {"ours_img_s", "reference_img_s", "ratio", "gflops", "peak_fraction"}


def _bench(*args):
  """benchmarks/run.py as users run it: one CPU device (conftest's forced 4 host devices removed)."""
  flags = " ".join(f for f in os.environ.get("XLA_FLAGS", "").split()
                   if not f.startswith("--xla_force_host_platform_device_count"))
  return subprocess.run([sys.executable, "-m", "benchmarks.run", "--quick", "--gap", "0", *args], cwd=ROOT,
                        env=dict(os.environ, XLA_FLAGS=flags), capture_output=True, text=True, timeout=600, check=False)


def test_compare_passes_rounding_and_flags_a_mismatch():
  ref = np.random.default_rng(0).standard_normal((4, 5)).astype(np.float32)
  assert common.compare(ref + 1e-7, ref, rtol=1e-5)["ok"]
  bad = ref.copy()
  bad[2, 3] += 1e-3
  check = common.compare([ref, bad], [ref, ref], rtol=1e-5)
  assert not check["ok"]
  assert check["max_abs_err"] == pytest.approx(1e-3, rel=1e-3)
  with pytest.raises(ValueError, match="shape"):
    common.compare(ref[:2], ref, rtol=1.0)


def test_round_ratios_are_reference_over_ours_per_round():
  assert common.round_ratios([1.0, 2.0], [3.0, 1.0]) == [3.0, 0.5]
  assert common.summarize([3.0, 1.0, 2.0]) == {"median": 2.0, "min": 1.0, "max": 3.0, "n": 3}
  assert common.gflops(4e9, 2.0) == 2.0 and common.gflops(None, 1.0) is None


class _FakeWorker:
  def __init__(self, replies):
    self.replies = replies

  def ask(self, **req):
    reply = self.replies[req["cmd"]]
    if isinstance(reply, Exception):
      raise reply
    return reply


def test_a_mismatch_or_missing_workload_is_not_timed():
  bad = {"max_abs_err": 1.0, "ref_abs_max": 1.0, "tolerance": 1e-4, "ok": False}
  ours = _FakeWorker({"prepare": {}, "setup": {"info": {"check": bad, "setup_s": 1.0}}})
  ref = _FakeWorker({"setup": {"info": {"setup_s": 1.0, "flops": 10.0}}})
  state = run.setup_workload("unet_fwd_64_b8", {}, ours, ref, "/nonexistent")
  assert state["status"] == "mismatch"
  times = run.time_rounds(["unet_fwd_64_b8"], {"unet_fwd_64_b8": {"inner": 1}}, {"unet_fwd_64_b8": state},
                          {"unet_fwd_64_b8": ours}, ref, rounds=2, gap=0.0)
  row = run.summarize_workload({"images": 8}, state, times["unet_fwd_64_b8"], peak_gflops=100.0)
  assert all(row[k] is None for k in SCHEMA_KEYS) and row["check"] is bad

  missing = _FakeWorker({"prepare": common.WorkerError("not committed", missing=True)})
  assert run.setup_workload("push", {}, missing, ref, "/nonexistent")["status"] == "missing"


def test_every_workload_has_a_spec():
  for quick in (False, True):
    all_specs = specs.workloads(quick)
    assert set(all_specs) == set(specs.ALL_NAMES) | {specs.PEAK}
    assert all(s["inner"] >= 1 for s in all_specs.values())
  assert specs.workloads()["ddim50_64_b8"]["steps"] == 50
  assert specs.workloads()["ddpm1000_32_b4"]["diffusion"]["num_timesteps"] == 1000


def test_quick_run_checks_equivalence_and_writes_the_schema(tmp_path):
  pytest.importorskip("torch")
  pytest.importorskip("diffusers")
  names = ["unet_fwd_64_b8", "ddim50_64_b8", "ssim_256_b8", "proto_similarity", "push"]
  out = tmp_path / "bench.json"
  proc = _bench("--only", ",".join(names), "--json", str(out))
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
  data = json.loads(out.read_text())
  assert data["device"] and data["peak"]["gflops"] > 0
  assert list(data["workloads"]) == names
  for name, row in data["workloads"].items():
    assert SCHEMA_KEYS <= set(row), name
    assert row["status"] == "ok", (name, row.get("error"))
    assert row["check"]["ok"] and row["check"]["max_abs_err"] <= row["check"]["tolerance"], name
    assert row["ours_img_s"] > 0 and row["reference_img_s"] > 0 and row["ratio"] > 0, name
    assert f"| {name} |" in proc.stdout
  assert data["workloads"]["push"]["check"]["same_images_and_cells"]


def test_precision_sets_both_sides_and_the_tolerance():
  fp32, mixed = specs.workloads(precision="fp32"), specs.workloads(precision="mixed")
  for name in ("unet_fwd_256_b1", "train_step_64_b16", "ddim50_256_b4"):
    kind = fp32[name]["kind"]
    assert fp32[name]["model"]["compute_dtype"] == "float32" and fp32[name]["reference_dtype"] == "float32"
    assert mixed[name]["model"]["compute_dtype"] == "bfloat16" and mixed[name]["reference_dtype"] == "float16"
    assert fp32[name]["rtol"] == specs.TOLERANCE["fp32"][kind] < mixed[name]["rtol"] == specs.TOLERANCE["mixed"][kind]
  assert (fp32[specs.PEAK]["dtype"], mixed[specs.PEAK]["dtype"]) == ("float32", "bfloat16")
  for name in ("lpips_256_b8", "ssim_256_b8", "push"):  # metrics and prototypes stay float32
    assert fp32[name] == mixed[name] and mixed[name]["reference_dtype"] == "float32"
  assert run.precision_of(mixed["unet_fwd_64_b8"]) == {
      "ours": "bfloat16 compute, float32 params", "reference": "float16", "rtol": specs.TOLERANCE["mixed"]["unet_forward"]}
  with pytest.raises(ValueError, match="precision"):
    specs.workloads(precision="fp16")


def test_paper_size_extras_only_when_named():
  assert not set(specs.EXTRA_NAMES) & set(run.parse_args([]).names)
  args = run.parse_args(["--only", "train_step_256_b16,ddim50_256_b4", "--precision", "mixed", "--device", "gpu"])
  assert args.names == [specs.PEAK, "train_step_256_b16", "ddim50_256_b4"]
  assert (args.precision, args.device, args.lpips_trunk) == ("mixed", "gpu", "imagenet")
  paper = specs.workloads()["train_step_256_b16"]
  assert (paper["size"], paper["batch"], paper["model"]["block_out_channels"]) == (256, 16, [128, 128, 256, 256, 512, 512])
  with pytest.raises(SystemExit):
    run.parse_args(["--only", "unet_fwd_512_b1"])


def test_worker_env_pins_the_device_and_float32_on_gpus():
  base = {"PATH": "/bin"}
  ours, ref = run.worker_env(base, "cpu", "fp32")
  assert ours["JAX_PLATFORMS"] == "cpu" and ref["MRIXAI_BENCH_DEVICE"] == "cpu"
  assert "JAX_DEFAULT_MATMUL_PRECISION" not in ours
  ours, ref = run.worker_env(base, "gpu", "fp32")
  assert (ours["JAX_PLATFORMS"], ours["JAX_DEFAULT_MATMUL_PRECISION"], ref["MRIXAI_BENCH_DEVICE"]) == ("cuda", "highest", "cuda")
  ours, ref = run.worker_env(base, "gpu", "mixed")
  assert "JAX_DEFAULT_MATMUL_PRECISION" not in ours
  ours, ref = run.worker_env(base, "auto", "fp32")
  assert "JAX_PLATFORMS" not in ours and ref["MRIXAI_BENCH_DEVICE"] == "auto"
  assert base == {"PATH": "/bin"}
  run.check_same_device({"backend": "gpu", "device_kind": "H100"}, {"device": "cuda: NVIDIA H100"})
  with pytest.raises(SystemExit, match="--device"):
    run.check_same_device({"backend": "cpu", "device_kind": "cpu"}, {"device": "cuda: NVIDIA H100"})


def test_reference_keeps_float32_on_the_cpu():
  pytest.importorskip("torch")
  from benchmarks import reference_torch  # pylint: disable=import-outside-toplevel
  import torch  # pylint: disable=import-outside-toplevel
  assert reference_torch.select_device("cpu") == torch.device("cpu")
  with pytest.raises(SystemExit, match="MRIXAI_BENCH_DEVICE"):
    reference_torch.select_device("tpu")
  if reference_torch.DEVICE.type == "cpu":
    spec = specs.workloads(precision="mixed")["unet_fwd_64_b8"]
    assert reference_torch.timed_dtype(spec) == torch.float32
    assert "stays float32" in reference_torch.dtype_note(spec)


def _wheel(folder, name, requires):
  path = folder / f"{name}-1.0-py3-none-any.whl"
  meta = "Metadata-Version: 2.1\nName: {}\nVersion: 1.0\n{}".format(name, "".join(f"Requires-Dist: {r}\n" for r in requires))
  with zipfile.ZipFile(path, "w") as z:
    z.writestr(f"{name}-1.0.dist-info/METADATA", meta)
  return path


def test_wheel_check_names_what_neither_travels_nor_is_on_the_image(tmp_path):
  from benchmarks.gpu import fetch_wheels  # pylint: disable=import-outside-toplevel
  _wheel(tmp_path, "carried_a", ["numpy", "carried-b>=1", "win-only; sys_platform == 'win32'", "docs; extra == 'doc'"])
  _wheel(tmp_path, "carried_b", ["Not_On_Image (>=2)"])
  assert fetch_wheels.unmet_requirements(tmp_path, provided=["numpy"]) == [
      "carried_b-1.0-py3-none-any.whl needs Not_On_Image (>=2)"]


def test_quick_mixed_run_checks_bf16_against_the_float32_reference(tmp_path):
  pytest.importorskip("torch")
  pytest.importorskip("diffusers")
  out = tmp_path / "bench.json"
  proc = _bench("--precision", "mixed", "--device", "cpu", "--only", "unet_fwd_64_b8", "--json", str(out))
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
  data = json.loads(out.read_text())
  assert data["precision"] == "mixed" and data["devices"]["reference"] == "cpu"
  assert data["peak"]["what"].endswith("bfloat16")
  row = data["workloads"]["unet_fwd_64_b8"]
  assert row["status"] == "ok" and row["precision"]["ours"] == "bfloat16 compute, float32 params"
  check = row["check"]
  assert check["tolerance"] == pytest.approx(specs.TOLERANCE["mixed"]["unet_forward"] * check["ref_abs_max"])
  # bf16 really ran: its error is far above float32 rounding (fp32 runs show ~1e-6)
  assert 1e-4 * check["ref_abs_max"] < check["max_abs_err"] <= check["tolerance"]
  assert "stays float32" in row["note"]
