"""Per-head summaries over seeds and the pairwise verdicts: constructed NIS and ρ give the known F,
diagnostics and report lines; a run without real counterparts renders without them."""

import numpy as np
import pytest

from configs import demo
from mrixai_jax.explain import aggregate
from mrixai_jax.explain import scoring
from mrixai_jax.report import study_report


STEPS = np.array([0, 10, 20, 30])


def _arrays(nis, rho, rng):
  n, p = nis.shape
  f = np.asarray(scoring.faithfulness(nis, rho))
  return {"nis": nis, "rho": rho, "faithfulness": f, "faithfulness_randomized": rng.uniform(-0.1, 0.1, n),
          "faithfulness_null_draws": rng.uniform(-0.1, 0.1, 9),
          "faithfulness_window_alt": f, "deletion_drop_top": np.ones(n), "deletion_drop_random": np.zeros(n),
          "windows": np.array([2, 4, 8]), "faithfulness_by_window": np.stack([f - 0.1, f, f + 0.1]),
          "prototype_class": np.arange(p) % 3 + 1, "tissue_hit": np.ones((n, p), bool),
          "tissue_chance": np.full((n, p), 0.25), "window": np.int64(4), "window_alt": np.int64(8),
          "emergence_faithfulness": np.outer(f, np.linspace(0, 1, len(STEPS))), "trajectory_steps": STEPS}


def test_constructed_nis_and_rho_give_the_known_faithfulness_and_diagnostics():
  rng = np.random.default_rng()
  # Image 0: all NIS on prototype 1 (ρ 0.8) -> F 0.8, entropy 0; image 1: uniform over 4 (ρ mean 0.25).
  nis = np.array([[0, 1, 0, 0], [0.25, 0.25, 0.25, 0.25]], np.float32)
  rho = np.array([[0.1, 0.8, -0.5, 0.0], [1.0, 0.0, -1.0, 1.0]], np.float32)
  summary = aggregate.head_summary([_arrays(nis, rho, rng)] * 2, None, None, [3, 4], demo.get_config().explain)
  assert summary["per_seed_mean"] == pytest.approx([(0.8 + 0.25) / 2] * 2, abs=1e-6)
  assert summary["seeds"] == [3, 4] and summary["real"] is None and summary["generated_minus_real"] is None
  d = summary["nis"]
  assert d["entropy"] == pytest.approx(np.log(4) / 2, abs=1e-6)
  assert d["effective_prototypes"] == pytest.approx((1 + 4) / 2, abs=1e-5)
  assert d["top1_rho"] == pytest.approx((0.8 + 1.0) / 2, abs=1e-6)  # image 1: ties go to the first
  assert d["mean_rho"] == pytest.approx((0.8 + 0.25 * 4) / 5, abs=1e-6)  # prototypes with NIS > 0


def test_verdicts_come_from_the_numbers():
  rows = [{"a": "ppnet", "b": "eppnet", "diff": -0.08, "ci95": [-0.15, -0.01], "p_value": 0.01, "p_holm": 0.03},
          {"a": "ppnet", "b": "protopool", "diff": 0.02, "ci95": [-0.05, 0.09], "p_value": 0.5, "p_holm": 0.6}]
  assert study_report.verdict(rows[0]) == ("ProtoPNet vs Enhanced ProtoPNet: Δ = -0.0800, 95% CI [-0.1500, -0.0100], "
                                           "Holm p = 0.0300: Enhanced ProtoPNet higher")
  assert study_report.verdict(rows[1]).endswith(": no difference shown")


def test_report_without_real_counterparts_renders(tmp_path):
  rng = np.random.default_rng()
  nis = rng.dirichlet(np.ones(4), size=6).astype(np.float32)
  rho = rng.uniform(-1, 1, (6, 4)).astype(np.float32)
  head = aggregate.head_summary([_arrays(nis, rho, rng)], None, None, [0], demo.get_config().explain)
  missing = {"mean": None, "sd": None}
  quality = {"psnr": missing, "ssim": missing, "lpips": missing, "dice": {"mean": 0.9, "sd": 0.01},
             "fid": None, "fd_vgg": None}
  report = study_report.build_report(quality, {"ppnet": head}, {}, {"explain": 1.0},
                                     {"faithfulness_comparisons": []})
  study_report.write_report(tmp_path, report, {})
  text = (tmp_path / "report.md").read_text()
  assert "| n/a | n/a | n/a | n/a | n/a | 0.9000 ± 0.0100 |" in text
  assert "| ProtoPNet | 1 |" in text and "| n/a | n/a |" in text


def test_controls_and_diagnostics_from_constructed_arrays():
  rng = np.random.default_rng()
  nis = rng.dirichlet(np.ones(4), size=6).astype(np.float32)
  rho = rng.uniform(0.2, 1, (6, 4)).astype(np.float32)
  seeds = [_arrays(nis, rho, rng) for _ in range(3)]
  seeds[0]["prototype_class"] = np.array([1, 2, -1, 3])  # prototype 2 without a source: not counted
  seeds[0]["tissue_hit"] = np.tile([True, False, True, True], (6, 1))
  summary = aggregate.head_summary(seeds, None, None, [0, 1, 2], demo.get_config().explain)
  f = np.mean([a["faithfulness"].mean() for a in seeds])
  assert list(summary["by_window"]) == ["2", "4", "8"]
  assert summary["by_window"]["8"]["mean"] == pytest.approx(f + 0.1, abs=1e-6)
  assert summary["by_window"]["4"]["mean"] == pytest.approx(summary["mean"], abs=1e-9)
  null = np.mean([a["faithfulness_null_draws"] for a in seeds], axis=0)
  assert summary["null"]["draws"] == 9 and summary["null"]["mean"] == pytest.approx(null.mean())
  assert summary["null"]["p_value"] == pytest.approx((1 + np.sum(null >= summary["mean"])) / 10)
  d = summary["deletion"]
  assert (d["drop_top"], d["drop_random"], d["ci95_diff"]) == (1.0, 0.0, [1.0, 1.0])
  assert d["p_value"] == pytest.approx(2 / 2 ** 6)  # exact: only all-plus and all-minus reach |sum| = 6
  purity = summary["tissue_purity"]
  assert purity["value"] == pytest.approx((2 / 3 + 1 + 1) / 3) and purity["chance"] == pytest.approx(0.25)
  emergence = summary["emergence"]  # F of x̂0 rising linearly over the steps reaches half at step 15
  assert emergence["value"] == pytest.approx(15.0) and emergence["ci95"] == pytest.approx([15.0, 15.0])
  assert emergence["curve"][-1] == pytest.approx(f, abs=1e-6) and emergence["steps"] == [0, 10, 20, 30]
