"""benchmarks/run.py: ours is checked against the peers before anything is timed, a mismatch is
never timed, and a tiny end-to-end run writes the ARCHITECTURE.md schema. No timing assertions."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from benchmarks import common, run, specs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCHEMA_KEYS = {"ours_img_s", "reference_img_s", "ratio", "gflops", "peak_fraction"}


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
    assert set(all_specs) == set(specs.NAMES) | {specs.PEAK}
    assert all(s["inner"] >= 1 for s in all_specs.values())
  assert specs.workloads()["ddim50_64_b8"]["steps"] == 50
  assert specs.workloads()["ddpm1000_32_b4"]["diffusion"]["num_timesteps"] == 1000


def test_quick_run_checks_equivalence_and_writes_the_schema(tmp_path):
  pytest.importorskip("torch")
  pytest.importorskip("diffusers")
  names = ["unet_fwd_64_b8", "ddim50_64_b8", "ssim_256_b8", "proto_similarity", "push"]
  out = tmp_path / "bench.json"
  proc = subprocess.run(
      [sys.executable, "benchmarks/run.py", "--quick", "--gap", "0", "--only", ",".join(names), "--json", str(out)],
      cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
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
