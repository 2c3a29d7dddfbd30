#!/usr/bin/env bash
# The GPU suite in one command, on a machine with the carried wheels and no internet:
#   bash benchmarks/gpu/run_on_device.sh            (from the repository root; results in $OUT)
# 1. installs benchmarks/gpu/wheels/*.whl (fetch_wheels.py) into /tmp/mrixai_site, --no-index,
#    --no-deps, and puts it and the repository on PYTHONPATH. (No venv: python3 there is itself a
#    venv, /opt/torch/.venv, and a venv made from it with --system-site-packages would not see its
#    torch and jax. No `pip install -e .`: run.py and its workers import mrixai_jax from the root.)
# 2. writes the card, driver and versions to $OUT/env.txt;
# 3. runs, each under the time left (BUDGET_S, default 450 s, for all three):
#    a. fp32, paper size: UNet forward 256² b1/b4, training step 256² b16, DDIM-50 256² b4, LPIPS 256² b8
#    b. mixed (ours bf16 compute vs diffusers fp16), paper size: the four UNet workloads of a
#    c. fp32, the rest of the CPU suite (64² model, DDPM-1000 32², SSIM, prototype kernel, push), if
#       at least 150 s are left.
# JSON and logs: $OUT/bench_gpu_{fp32,mixed,fp32_rest}.{json,log}.
# Knobs: BUDGET_S, ROUNDS (default 3), PYTHON; DEVICE (default gpu) and BENCH_ARGS (e.g. "--quick")
# rehearse the script on a CPU machine.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/mrixai_bench_out}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
BUDGET_S=${BUDGET_S:-450}
ROUNDS=${ROUNDS:-3}
DEVICE=${DEVICE:-gpu}
read -r -a BENCH_ARGS <<< "${BENCH_ARGS:-}"
SITE=/tmp/mrixai_site
export PYTHONUNBUFFERED=1
export JAX_COMPILATION_CACHE_DIR=/tmp/mrixai_jax_cache  # a rerun on the same warm machine compiles less
export JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=2

"$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --disable-pip-version-check \
  --upgrade --target "$SITE" benchmarks/gpu/wheels/*.whl || { echo "wheel install failed"; exit 3; }
export PYTHONPATH="$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}"

{
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
  "$PY" - <<'PYEOF'
import importlib.metadata as md, importlib.util, platform
print("python", platform.python_version())
for dist in ("jax", "jaxlib", "flax", "optax", "torch", "torchvision", "diffusers", "lpips", "ml_collections",
             "scikit-image", "numpy"):
  try:
    print(f"{dist} {md.version(dist)}", end="; ")
  except md.PackageNotFoundError:
    print(f"{dist} MISSING", end="; ")
import jax, torch
print("\njax devices", jax.devices(), "| torch", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA")
PYEOF
} 2>&1 | tee "$OUT/env.txt"

PAPER=unet_fwd_256_b1,unet_fwd_256_b4,train_step_256_b16,ddim50_256_b4
REST=unet_fwd_64_b8,train_step_64_b16,ddim50_64_b8,ddpm1000_32_b4,ssim_256_b8,proto_similarity,push

suite() {  # suite NAME MIN_SECONDS run.py-arguments...
  local name=$1 need=$2 left=$((BUDGET_S - SECONDS))
  shift 2
  if (( left < need )); then
    echo "[gpu] skipping $name: ${left} s left of ${BUDGET_S}" | tee -a "$OUT/env.txt"
    return
  fi
  echo "[gpu] $name: up to ${left} s" | tee -a "$OUT/env.txt"
  timeout --kill-after=10 "$left" "$PY" -m benchmarks.run --device "$DEVICE" --rounds "$ROUNDS" --lpips-trunk random \
    --json "$OUT/bench_gpu_$name.json" "${BENCH_ARGS[@]}" "$@" 2>&1 | tee "$OUT/bench_gpu_$name.log"
  local logs
  logs=$(sed -n 's/^worker logs kept in //p' "$OUT/bench_gpu_$name.log")
  if [[ -n "$logs" ]]; then
    tail -n 40 "$logs"/*.log >> "$OUT/bench_gpu_$name.log" 2>&1
  fi
}

suite fp32 60 --precision fp32 --only "$PAPER,lpips_256_b8"
suite mixed 60 --precision mixed --only "$PAPER"
suite fp32_rest 150 --precision fp32 --only "$REST"
echo "[gpu] done in ${SECONDS} s"
