"""BatchIterator: fixed batches, epoch reshuffle, exact resume, sharded placement."""

import jax
import numpy as np

from mrixai_jax import sharding
from mrixai_jax.data.pipeline import BatchIterator


def _arrays(n=37):
  rng = np.random.default_rng(0)
  return {"image": rng.normal(size=(n, 4, 4, 1)).astype(np.float32),
          "index": np.arange(n), "patient_id": np.array([f"p{i}" for i in range(n)])}


def test_epoch_covers_each_example_once_and_reshuffles():
  it = BatchIterator(_arrays(), batch_size=6, seed=3, prefetch=2)
  epoch0 = np.concatenate([next(it)["index"] for _ in range(it.batches_per_epoch)])
  epoch1 = np.concatenate([next(it)["index"] for _ in range(it.batches_per_epoch)])
  it.close()
  assert len(set(epoch0.tolist())) == 36 and len(set(epoch1.tolist())) == 36
  assert not np.array_equal(epoch0, epoch1)


def test_resume_continues_exactly():
  full = BatchIterator(_arrays(), batch_size=5, seed=1, prefetch=0)
  reference = [next(full)["index"] for _ in range(17)]
  first = BatchIterator(_arrays(), batch_size=5, seed=1, prefetch=3)
  for _ in range(9):
    next(first)
  state = first.get_state()
  first.close()
  resumed = BatchIterator(_arrays(), batch_size=5, seed=1, prefetch=3)
  resumed.set_state(state)
  rest = [next(resumed)["index"] for _ in range(8)]
  resumed.close()
  for a, b in zip(reference[9:], rest):
    np.testing.assert_array_equal(a, b)


def test_sharded_batches_are_global_arrays_split_over_devices():
  mesh = sharding.make_mesh()
  it = BatchIterator(_arrays(), batch_size=8, seed=0, sharding=sharding.batch_sharding(mesh), prefetch=0)
  batch = next(it)
  assert isinstance(batch["image"], jax.Array) and batch["image"].shape == (8, 4, 4, 1)
  assert len(batch["image"].addressable_shards) == len(jax.devices())
  assert isinstance(batch["patient_id"], np.ndarray)
