"""progress.batch_slices: slices covering a pass in order, progress lines by a (faked) clock."""

import logging

import pytest

from mrixai_jax import progress


@pytest.mark.parametrize("num, batch", [(10, 3), (9, 3), (2, 5), (0, 4)])
def test_batch_slices_cover_the_pass_in_order(num, batch):
  rows = list(progress.batch_slices(num, batch, "test"))
  covered = [i for r in rows for i in range(r.start, r.stop)]
  assert covered == list(range(num))
  assert all(r.stop - r.start == batch for r in rows[:-1])


def _lines(caplog):
  return [r.getMessage() for r in caplog.records if r.getMessage().startswith("pass:")]


@pytest.mark.parametrize("final_line, expected", [(True, [(logging.DEBUG, "pass: 6/6 images")]), (False, [])])
def test_a_fast_pass_logs_only_its_final_line_at_debug(caplog, final_line, expected):
  with caplog.at_level(logging.DEBUG):
    list(progress.batch_slices(6, 2, "pass", final_line=final_line))
  assert [(r.levelno, r.getMessage().split(",")[0]) for r in caplog.records
          if r.getMessage().startswith("pass:")] == expected


def test_a_slow_pass_logs_every_log_every_s_with_rate_and_eta(caplog, monkeypatch):
  assert progress.LOG_EVERY_S == 30.0
  now = [0.0]
  monkeypatch.setattr(progress.time, "perf_counter", lambda: now[0])
  with caplog.at_level(logging.INFO):
    for _ in progress.batch_slices(8, 2, "pass", final_line=False):
      now[0] += 20.0  # every batch takes 20 s: lines after 40 s and 80 s
  assert _lines(caplog) == ["pass: 4/8 images, 0.1 img/s, ETA 0m40s", "pass: 8/8 images, 0.1 img/s, ETA 0m00s"]


def test_throttle_is_due_every_log_every_s_and_on_final(monkeypatch):
  clock = iter([0.0, 10.0, 31.0, 40.0, 62.0, 63.0])
  monkeypatch.setattr(progress.time, "perf_counter", lambda: next(clock))
  throttle = progress.Throttle()  # t = 0
  assert [throttle.due(), throttle.due(), throttle.due(), throttle.due(), throttle.due(final=True)] == [
      False, True, False, True, True]
