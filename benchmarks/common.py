"""Benchmark plumbing shared by the driver (`run.py`) and its two workers (ours / reference).

Workers speak JSON lines on stdin/stdout (anything libraries print goes to stderr, i.e. the
worker's log file):
  {"cmd": "prepare", "name", "spec", "path"}   ours only: build the workload, write the inputs the
                                                reference must use (images, x_T, weights) to `path`
  {"cmd": "setup", "name", "spec", "path_in", "path_out"}
                                                reference: read inputs, build, write its weights and
                                                reference outputs; ours: load those, compare, reply
                                                the check; both: `spec["warmup"]` (default 1) untimed
                                                calls (JIT compilation included)
  {"cmd": "run", "name", "inner"}               time `inner` calls, reply the seconds of each
  {"cmd": "info"}                               versions, device, thread count, XLA flags
  {"cmd": "quit"}
Replies: {"ok": true, ...} or {"ok": false, "error": str, "missing": bool}.
"""

import json
import os
import statistics
import subprocess
import sys
import time
import traceback

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Missing(Exception):
  """The code a workload measures is not (yet) part of the library."""


# ----------------------------------------------------------------------------- statistics
def median_call_seconds(fn, *args, reps: int, warmup: bool = True) -> float:
  """Median wall seconds of `fn(*args)` (a jax function) over `reps` calls, after one warm-up."""
  if warmup:
    fn(*args).block_until_ready()
  times = []
  for _ in range(reps):
    t0 = time.perf_counter()
    fn(*args).block_until_ready()
    times.append(time.perf_counter() - t0)
  return statistics.median(times)


def alternating_rounds(calls: dict, rounds: int, reps: int = 1, gap: float = 0.0) -> dict:
  """`{name: [seconds per round]}` of the no-argument jax functions `calls`: one untimed call each,
  then every round times each (median of `reps` calls back to back, after `gap` s idle) in the order
  of `calls`, reversed on odd rounds, so drifts and load from other processes hit all alike."""
  for fn in calls.values():
    fn().block_until_ready()
  seconds = {name: [] for name in calls}
  for r in range(rounds):
    for name in list(calls) if r % 2 == 0 else list(calls)[::-1]:
      time.sleep(gap)
      seconds[name].append(median_call_seconds(calls[name], reps=reps, warmup=False))
  return seconds


def summarize(xs) -> dict:
  """Median, min, max and count of a list of seconds."""
  return {"median": statistics.median(xs), "min": min(xs), "max": max(xs), "n": len(xs)}


def round_ratios(ours_rounds, reference_rounds) -> list:
  """Per-round throughput ratios ours/reference = reference seconds / our seconds (same round)."""
  return [r / o for o, r in zip(ours_rounds, reference_rounds)]


def gflops(flops, seconds):
  """GFLOP/s of `flops` floating-point operations done in `seconds` (None if either is unknown)."""
  if not flops or not seconds:
    return None
  return flops / seconds / 1e9


def compare(ours, reference, rtol: float, atol: float = 0.0) -> dict:
  """Max abs error of `ours` against `reference` (arrays or lists of arrays) and whether it is within
  `atol + rtol * max|reference|`. Shapes must agree exactly."""
  ours = ours if isinstance(ours, (list, tuple)) else [ours]
  reference = reference if isinstance(reference, (list, tuple)) else [reference]
  if len(ours) != len(reference):
    raise ValueError(f"compare: {len(ours)} arrays vs {len(reference)} reference arrays")
  err, scale = 0.0, 0.0
  for a, b in zip(ours, reference):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
      raise ValueError(f"compare: shape {a.shape} vs reference {b.shape}")
    err = max(err, float(np.max(np.abs(a - b))) if a.size else 0.0)
    scale = max(scale, float(np.max(np.abs(b))) if b.size else 0.0)
  tol = atol + rtol * scale
  return {"max_abs_err": err, "ref_abs_max": scale, "tolerance": tol, "ok": bool(err <= tol)}


# ----------------------------------------------------------------------------- workers
def serve(make_workload, describe) -> None:
  """Worker main loop: `make_workload(name, spec)` -> object with `prepare(path)` (ours),
  `setup(path_in, path_out) -> dict` and `__call__()` (one timed call, blocking until done);
  `describe()` -> dict of versions and device for the "info" command."""
  proto = os.fdopen(os.dup(1), "w", buffering=1)
  os.dup2(2, 1)  # stray prints from libraries go to the log, not the protocol
  sys.stdout = sys.stderr
  workloads = {}
  for line in sys.stdin:
    req = json.loads(line)
    cmd = req["cmd"]
    try:
      if cmd == "quit":
        proto.write(json.dumps({"ok": True}) + "\n")
        break
      if cmd == "prepare":
        workloads[req["name"]] = make_workload(req["name"], req["spec"])
        workloads[req["name"]].prepare(req["path"])
        rep = {"ok": True}
      elif cmd == "setup":
        if req["name"] not in workloads:
          workloads[req["name"]] = make_workload(req["name"], req["spec"])
        t0 = time.perf_counter()
        info = workloads[req["name"]].setup(req["path_in"], req["path_out"])
        for _ in range(req["spec"].get("warmup", 1)):  # the first call of a jitted function compiles
          workloads[req["name"]]()
        info["setup_s"] = time.perf_counter() - t0
        rep = {"ok": True, "info": info}
      elif cmd == "run":
        fn, times = workloads[req["name"]], []
        for _ in range(req["inner"]):
          t0 = time.perf_counter()
          fn()
          times.append(time.perf_counter() - t0)
        rep = {"ok": True, "times": times}
      elif cmd == "info":
        rep = {"ok": True, "info": describe()}
      else:
        rep = {"ok": False, "error": f"unknown command {cmd!r}"}
    except Missing as e:
      rep = {"ok": False, "missing": True, "error": str(e)}
    except Exception as e:  # report and keep serving the other workloads
      traceback.print_exc()
      rep = {"ok": False, "missing": False, "error": f"{type(e).__name__}: {e}"}
    proto.write(json.dumps(rep) + "\n")


class WorkerError(RuntimeError):
  def __init__(self, message, missing=False):
    super().__init__(message)
    self.missing = missing


class Worker:
  """A long-lived worker process (`python -m benchmarks.worker SIDE ...`) and its log file."""

  def __init__(self, label, args, env, log_path):
    self.label = label
    self.log_path = log_path
    self._log = open(log_path, "w")
    self.proc = subprocess.Popen([sys.executable, "-m", "benchmarks.worker", *args], cwd=ROOT,
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log,
                                 env=env, text=True, bufsize=1)

  def ask(self, **req) -> dict:
    if self.proc.poll() is not None:
      raise WorkerError(f"{self.label} worker is not running (exit {self.proc.returncode}); see {self.log_path}")
    self.proc.stdin.write(json.dumps(req) + "\n")
    self.proc.stdin.flush()
    line = self.proc.stdout.readline()
    if not line:
      raise WorkerError(f"{self.label} worker died; see {self.log_path}")
    rep = json.loads(line)
    if not rep.get("ok"):
      raise WorkerError(f"{self.label}: {rep.get('error')}", missing=rep.get("missing", False))
    return rep

  def close(self) -> None:
    if self.proc.poll() is None:
      try:
        self.ask(cmd="quit")
        self.proc.wait(timeout=60)
      except (WorkerError, OSError, subprocess.TimeoutExpired):
        self.proc.kill()
    self._log.close()


# ----------------------------------------------------------------------------- output
def fmt_rate(x) -> str:
  if x is None:
    return "-"
  return f"{x:.3g}" if x < 100 else f"{x:.0f}"


def markdown_table(rows, columns) -> str:
  """`rows`: list of dicts; `columns`: list of (header, key) -> a GitHub markdown table."""
  lines = ["| " + " | ".join(h for h, _ in columns) + " |", "|" + "---|" * len(columns)]
  for row in rows:
    lines.append("| " + " | ".join(str(row.get(k, "-")) for _, k in columns) + " |")
  return "\n".join(lines)
