"""Data parallelism with jax.sharding for sampling and training: a 1-D mesh over devices, batch sharded,
params and state replicated."""

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

DATA_AXIS = "data"


def make_mesh(devices=None) -> Mesh:
  """1-D mesh named ``'data'`` over `devices` (default: all devices of all processes)."""
  devices = jax.devices() if devices is None else devices
  return Mesh(np.asarray(devices), (DATA_AXIS,))


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """Leading (batch) axis split over the mesh, other axes whole."""
  return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
  """Every device holds the whole array (params, optimizer state, RNG keys)."""
  return NamedSharding(mesh, PartitionSpec())


def check_batch_divisible(batch_size: int, mesh: Mesh, key: str) -> None:
  """Raises ValueError naming config `key` when `batch_size` does not split over the mesh."""
  n = mesh.devices.size
  if batch_size % n:
    raise ValueError(f"{key}={batch_size} is not divisible by the number of devices ({n})")


def maybe_initialize_distributed(distributed_config) -> None:
  """`jax.distributed.initialize()` when the config asks (multi-host; coordinator from the env)."""
  if distributed_config.initialize:
    jax.distributed.initialize()
