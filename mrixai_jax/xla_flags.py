"""XLA:CPU flags the library sets because they measurably speed up its workloads.

`configure(image_size)` appends them to `XLA_FLAGS`; XLA reads that variable once, when jax
creates its first backend, so call it before any jax computation (first thing in an entry point,
with the config's `data.image_size`; `benchmarks/worker.py` does). It changes nothing when:
- `MRIXAI_XLA_FLAGS=0` (opt-out; also `false`, `no`, `off`),
- jax already created a backend (too late to matter),
- the flag is already in `XLA_FLAGS` (the user's setting wins),
- the installed jaxlib is not a version the flag was measured on (experimental XLA flags are
  renamed or dropped between releases, and XLA aborts on unknown flags).
Measurements behind every flag: docs/PERFORMANCE.md.
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


def wanted_flags(jaxlib_version: str, image_size=None) -> tuple:
  """The flags of CPU_FLAGS measured on `jaxlib_version` that help at `image_size` (None: unknown,
  only size-independent flags)."""
  return tuple(flag for flag, versions, max_size in CPU_FLAGS
               if jaxlib_version.startswith(versions)
               and (max_size is None or (image_size is not None and image_size <= max_size)))


def configure(image_size=None) -> tuple:
  """Appends the library's XLA:CPU flags for images of side `image_size` (the config's
  `data.image_size`) to `XLA_FLAGS`; returns the flags it added."""
  if _opted_out() or _backend_initialized():
    return ()
  current = os.environ.get("XLA_FLAGS", "")
  present = {f.split("=", 1)[0] for f in current.split()}
  added = tuple(f for f in wanted_flags(_jaxlib_version(), image_size) if f.split("=", 1)[0] not in present)
  if added:
    os.environ["XLA_FLAGS"] = " ".join([current, *added]).strip()
    logging.getLogger(__name__).debug("XLA_FLAGS += %s", " ".join(added))
  return added
