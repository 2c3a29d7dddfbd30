"""MetricWindow: means since the last progress line, step rate and ETA (clock faked)."""

from mrixai_jax.training import metric_window


def test_means_rate_and_eta_per_window(monkeypatch):
  now = [100.0]
  monkeypatch.setattr(metric_window.time, "perf_counter", lambda: now[0])
  window = metric_window.MetricWindow(first_step=10, num_steps=310)
  window.add({"loss": 1.0, "acc": 0.5})
  window.add({"loss": 3.0, "acc": 1.0})
  now[0] += 4.0  # 2 steps in 4 s
  assert window.close(12) == ({"loss": 2.0, "acc": 0.75}, 0.5, "9m56s")  # 298 steps at 0.5 steps/s
  window.add({"loss": 5.0})
  now[0] += 1.0
  assert window.close(13) == ({"loss": 5.0}, 1.0, "4m57s")  # the second window only
