#!/usr/bin/env python3
"""LPIPS-VGG and SSIM throughput against the official `lpips` (PyTorch) and scikit-image.

  python -m benchmarks.bench_metrics [--quick] [--json PATH] [--rounds N]

Runs the `lpips_256_b8` and `ssim_256_b8` workloads of `benchmarks/run.py` (same harness: the
outputs of both sides are compared before anything is timed, both run in the same session, a
table is printed). The reference LPIPS is the official `lpips` 0.1.4 network with its own v0.1
linear layers and our VGG16 trunk weights copied in; where torchvision is missing, its
`vgg16().features` layer list is declared by a stand-in (see benchmarks/reference_torch.py).
"""

import sys

from benchmarks import run

WORKLOADS = ("lpips_256_b8", "ssim_256_b8")


def main(argv=None) -> None:
  argv = list(sys.argv[1:] if argv is None else argv)
  if any(a == "--only" or a.startswith("--only=") for a in argv):
    raise SystemExit("bench_metrics.py selects its own workloads; use benchmarks/run.py --only ...")
  run.main(["--only", ",".join(WORKLOADS), *argv])


if __name__ == "__main__":
  main()
