"""XLA:CPU flags the library sets because they measurably speed up its workloads.

`configure(image_size, batch_sizes)` appends them to `XLA_FLAGS`; XLA reads that variable once,
when jax creates its first backend, so call it before any jax computation (first thing in an
entry point, with the config's `data.image_size` and batch sizes; `benchmarks/worker.py` does).
Besides the experimental fusion flags of CPU_FLAGS, small images get one host device per CPU core
(`--xla_force_host_platform_device_count`) when the caller passes batch sizes (`cli.run(...,
host_devices=True)`: sample.py): batches are sharded over all devices, so each core runs its own
share (DDIM sampling at 64² +28%) instead of two cores splitting every small convolution. Training
gains nothing from it, so train.py and the study leave it out. It only adds CPU devices: on a GPU
machine jax still computes on the GPU. It changes nothing when:
- `MRIXAI_XLA_FLAGS=0` (opt-out; also `false`, `no`, `off`),
- jax already created a backend (too late to matter),
- the flag is already in `XLA_FLAGS` (the user's setting wins),
- the installed jaxlib is not a version the flag was measured on (experimental XLA flags are
  renamed or dropped between releases, and XLA aborts on unknown flags).
The device flag is version-independent and also left out when no batch size splits (the count is
the largest one that divides every batch size). Measurements behind every flag: docs/PERFORMANCE.md.
"""

import importlib.metadata
import logging
import os
import sys

OPT_OUT_ENV = "MRIXAI_XLA_FLAGS"

# (flag, jaxlib version prefixes it was measured on, largest image side it helps at; None: any)
CPU_FLAGS = (
    # YNNPACK fusions of dots, elementwise ops and reductions: keeps both cores busy on the
    # small convolutions and attention of the 64² UNet; slower on the 256² model.
    ("--xla_cpu_experimental_ynn_fusion_type=dot,eltwise,reduce", ("0.10.",), 128),
)

HOST_DEVICES_FLAG = "--xla_force_host_platform_device_count"
HOST_DEVICES_MAX_SIZE = 128  # largest image side where data parallelism over cores was measured to help


def _opted_out() -> bool:
  return os.environ.get(OPT_OUT_ENV, "1").strip().lower() in ("0", "false", "no", "off")


def _backend_initialized() -> bool:
  bridge = sys.modules.get("jax._src.xla_bridge")
  return bool(getattr(bridge, "_backends", None))


def _jaxlib_version() -> str:
  try:
    return importlib.metadata.version("jaxlib")
  except importlib.metadata.PackageNotFoundError:
    return ""


def usable_cpus() -> int:
  """CPU cores this process may run on."""
  return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def host_device_count(image_size, batch_sizes, cpus: int) -> int:
  """Host devices for images of side `image_size`: the largest count up to `cpus` that divides
  every batch size in `batch_sizes` (1: keep jax's single CPU device)."""
  if image_size is None or image_size > HOST_DEVICES_MAX_SIZE or not batch_sizes:
    return 1
  return max(n for n in range(1, max(cpus, 1) + 1) if all(b % n == 0 for b in batch_sizes))


def wanted_flags(jaxlib_version: str, image_size=None, batch_sizes=(), cpus: int = 1) -> tuple:
  """The flags of CPU_FLAGS measured on `jaxlib_version` that help at `image_size` (None: unknown,
  only size-independent flags), then the host-device flag for `batch_sizes` on `cpus` cores."""
  flags = tuple(flag for flag, versions, max_size in CPU_FLAGS
                if jaxlib_version.startswith(versions)
                and (max_size is None or (image_size is not None and image_size <= max_size)))
  devices = host_device_count(image_size, batch_sizes, cpus)
  return flags + ((f"{HOST_DEVICES_FLAG}={devices}",) if devices > 1 else ())


def configure(image_size=None, batch_sizes=()) -> tuple:
  """Appends the library's XLA:CPU flags for images of side `image_size` (the config's
  `data.image_size`) and the run's batch sizes to `XLA_FLAGS`; returns the flags it added."""
  if _opted_out() or _backend_initialized():
    return ()
  current = os.environ.get("XLA_FLAGS", "")
  present = {f.split("=", 1)[0] for f in current.split()}
  wanted = wanted_flags(_jaxlib_version(), image_size, tuple(batch_sizes), usable_cpus())
  added = tuple(f for f in wanted if f.split("=", 1)[0] not in present)
  if added:
    os.environ["XLA_FLAGS"] = " ".join([current, *added]).strip()
    logging.getLogger(__name__).debug("XLA_FLAGS += %s", " ".join(added))
  return added
