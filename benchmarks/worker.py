"""A benchmark worker process: `python -m benchmarks.worker ours [IMAGE_SIZE [BATCH]] | reference`.

The ours worker applies the library's XLA:CPU flags for images of side IMAGE_SIZE (0: unknown)
and batches of BATCH images (0: unknown) with `mrixai_jax.xla_flags.configure` (unless
MRIXAI_XLA_FLAGS=0) before jax starts, as the entry points do with the config's `data.image_size`
and batch sizes.
"""

import sys


def main(side: str, image_size: int = 0, batch: int = 0) -> None:
  if side == "ours":
    from mrixai_jax import xla_flags  # pylint: disable=g-import-not-at-top
    xla_flags.configure(image_size or None, (batch,) if batch else ())
    from benchmarks import ours as side_module  # pylint: disable=g-import-not-at-top
  elif side == "reference":
    from benchmarks import reference_torch as side_module  # pylint: disable=g-import-not-at-top
  else:
    raise SystemExit(f"usage: python -m benchmarks.worker ours|reference (got {side!r})")
  from benchmarks import common  # pylint: disable=g-import-not-at-top
  common.serve(side_module.make_workload, side_module.describe)


if __name__ == "__main__":
  main(sys.argv[1] if len(sys.argv) > 1 else "", *(int(a) for a in sys.argv[2:4]))
