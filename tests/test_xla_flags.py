"""mrixai_jax.xla_flags: appends only measured flags for the image size at hand, never overrides the
user, honours the opt-out."""

import os

from mrixai_jax import xla_flags

FLAG, _, MAX_SIZE = xla_flags.CPU_FLAGS[0]
NAME = FLAG.split("=", 1)[0]


def _configure(monkeypatch, xla_flags_env=None, opt_out=None, jaxlib="0.10.2", initialized=False, size=64,
               batch_sizes=(), cpus=2):
  monkeypatch.setattr(xla_flags, "_jaxlib_version", lambda: jaxlib)
  monkeypatch.setattr(xla_flags, "usable_cpus", lambda: cpus)
  monkeypatch.setattr(xla_flags, "_backend_initialized", lambda: initialized)
  for var, value in (("XLA_FLAGS", xla_flags_env), (xla_flags.OPT_OUT_ENV, opt_out)):
    if value is None:
      monkeypatch.delenv(var, raising=False)
    else:
      monkeypatch.setenv(var, value)
  added = xla_flags.configure(size, batch_sizes)
  return added, os.environ.get("XLA_FLAGS")


def test_appends_to_existing_flags(monkeypatch):
  added, env = _configure(monkeypatch, xla_flags_env="--xla_force_host_platform_device_count=4")
  assert added == (FLAG,)
  assert env == f"--xla_force_host_platform_device_count=4 {FLAG}"


def test_user_setting_wins(monkeypatch):
  mine = f"{NAME}=dot"
  added, env = _configure(monkeypatch, xla_flags_env=mine)
  assert added == () and env == mine


def test_opt_out_unmeasured_jaxlib_size_and_late_call_change_nothing(monkeypatch):
  for kwargs in (dict(opt_out="0"), dict(opt_out="off"), dict(jaxlib="0.11.0"), dict(jaxlib=""),
                 dict(initialized=True), dict(size=2 * MAX_SIZE), dict(size=None)):
    added, env = _configure(monkeypatch, **kwargs)
    assert added == () and env is None, kwargs


def test_backend_detection_sees_this_process():
  import jax  # pylint: disable=g-import-not-at-top
  jax.devices()
  assert xla_flags._backend_initialized()  # pylint: disable=protected-access


DEVICES = xla_flags.HOST_DEVICES_FLAG


def test_one_host_device_per_core_for_small_images(monkeypatch):
  added, env = _configure(monkeypatch, batch_sizes=(8, 16, 16), cpus=2)
  assert added == (FLAG, f"{DEVICES}=2") and env == f"{FLAG} {DEVICES}=2"


def test_host_device_count_divides_every_batch():
  count = xla_flags.host_device_count
  assert count(64, (8, 16, 16), cpus=2) == 2
  assert count(64, (12, 18), cpus=8) == 6
  assert count(64, (8, 6), cpus=16) == 2
  assert count(64, (7, 16), cpus=4) == 1  # nothing splits a batch of 7
  assert count(64, (), cpus=4) == 1 and count(None, (8,), cpus=4) == 1
  assert count(xla_flags.HOST_DEVICES_MAX_SIZE * 2, (8,), cpus=4) == 1


def test_host_devices_user_setting_opt_out_and_large_images_win(monkeypatch):
  mine = f"{DEVICES}=4"
  added, env = _configure(monkeypatch, xla_flags_env=mine, batch_sizes=(8,), cpus=2)
  assert added == (FLAG,) and env == f"{mine} {FLAG}"
  for kwargs in (dict(opt_out="0"), dict(size=2 * MAX_SIZE), dict(cpus=1), dict(batch_sizes=(5,))):
    added, _ = _configure(monkeypatch, **{"batch_sizes": (8,), **kwargs})
    assert DEVICES not in " ".join(added), kwargs
