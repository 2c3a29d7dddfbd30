"""Restricted unpicklers: refuse foreign globals (naming them) and read torch formats like torch does."""

import io
import os
import pickle
import zipfile

import numpy as np
import pytest

from mrixai_jax.pretrained import unpickle


class _Exploit:
  """Pickles to a call of os.system: what a malicious weight file looks like."""

  def __init__(self, marker):
    self.marker = marker

  def __reduce__(self):
    return (os.system, (f"touch {self.marker}",))


def test_numpy_pickle_round_trip(tmp_path):
  tree = {"a": {"kernel": np.arange(6, dtype=np.float32).reshape(2, 3)}, "b": np.ones(3, np.int64)}
  path = tmp_path / "w.ckpt"
  path.write_bytes(pickle.dumps(tree, protocol=3))
  out = unpickle.load_numpy_pickle(path)
  np.testing.assert_array_equal(out["a"]["kernel"], tree["a"]["kernel"])
  np.testing.assert_array_equal(out["b"], tree["b"])


def test_malicious_numpy_pickle_is_refused_and_named(tmp_path):
  marker = tmp_path / "pwned"
  path = tmp_path / "evil.ckpt"
  path.write_bytes(pickle.dumps({"w": np.zeros(2), "x": _Exploit(marker)}, protocol=3))
  with pytest.raises(unpickle.UnsafePickleError) as err:
    unpickle.load_numpy_pickle(path)
  msg = str(err.value)
  assert "system" in msg and os.system.__module__ in msg  # e.g. 'posix.system'
  assert str(path) in msg
  assert not marker.exists()


def test_malicious_torch_zip_is_refused(tmp_path):
  marker = tmp_path / "pwned"
  buf = io.BytesIO()
  with zipfile.ZipFile(buf, "w") as z:
    z.writestr("archive/data.pkl", pickle.dumps({"x": _Exploit(marker)}, protocol=2))
  with pytest.raises(unpickle.UnsafePickleError, match="system"):
    unpickle.load_torch_zip(io.BytesIO(buf.getvalue()), "evil.pt")
  assert not marker.exists()


def test_malicious_torch_legacy_is_refused(tmp_path):
  marker = tmp_path / "pwned"
  parts = [pickle.dumps(0x1950A86A20F9469CFC6C, 2), pickle.dumps(1001, 2), pickle.dumps({}, 2),
           pickle.dumps({"x": _Exploit(marker)}, 2)]
  with pytest.raises(unpickle.UnsafePickleError, match="system"):
    unpickle.load_torch_legacy(b"".join(parts), "evil.pth")
  assert not marker.exists()


def _torch_state():
  torch = pytest.importorskip("torch")
  g = torch.Generator().manual_seed(0)
  base = torch.randn(6, 5, generator=g)
  return torch, {"w": torch.randn(3, 4, 1, 1, generator=g), "view": base[1:, 2:],
                 "t": base.t(), "i": torch.arange(7), "s": torch.tensor(2.5, dtype=torch.float64)}


@pytest.mark.parametrize("zip_format", [True, False])
def test_torch_readers_match_torch_load(tmp_path, zip_format):
  torch, state = _torch_state()
  path = tmp_path / "state.pt"
  torch.save(state, path, _use_new_zipfile_serialization=zip_format)
  ours = (unpickle.load_torch_zip(path, str(path)) if zip_format
          else unpickle.load_torch_legacy(path.read_bytes(), str(path)))
  ref = torch.load(path, weights_only=True)
  assert set(ours) == set(ref)
  for k, v in ref.items():
    assert ours[k].dtype == v.numpy().dtype, k
    np.testing.assert_array_equal(ours[k], v.numpy(), err_msg=k)
