"""Atomic writes: the target appears whole with ordinary permissions, or not at all."""

import os
import stat

import numpy as np
import pytest

from mrixai_jax import atomic


def test_written_file_has_umask_permissions_and_no_temp_left(tmp_path):
  atomic.write_json(tmp_path / "a" / "r.json", {"x": 1})
  mode = stat.S_IMODE(os.stat(tmp_path / "a" / "r.json").st_mode)
  mask = os.umask(0)
  os.umask(mask)
  assert mode == 0o666 & ~mask
  assert [p.name for p in (tmp_path / "a").iterdir()] == ["r.json"]


def test_failure_keeps_the_previous_file(tmp_path):
  target = tmp_path / "s.npz"
  with atomic.atomic_path(target, ".npz") as tmp:
    np.savez(tmp, a=np.arange(3))
  with pytest.raises(RuntimeError):
    with atomic.atomic_path(target, ".npz") as tmp:
      np.savez(tmp, a=np.arange(5))
      raise RuntimeError("interrupted")
  np.testing.assert_array_equal(np.load(target)["a"], np.arange(3))
  assert [p.name for p in tmp_path.iterdir()] == ["s.npz"]
