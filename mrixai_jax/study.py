"""The one-command study (`explain.py`): the stages of `mrixai_jax.stages` in order, each once.

  data → diffusion → samples → heads/<kind> (each head) → explain/<kind> → evaluate, then the report

A stage is reused when its completion marker (`workdir.stage_marker`) exists; an interrupted stage has
no marker and runs again, resuming from its own checkpoints. The report is written on every run.
`explain.py --overwrite` with a changed config first removes the markers and outputs computed from
the changed sections (`mrixai_jax.workdir.PRODUCTS`), so those stages run again.
"""

import dataclasses
import json
import pathlib
import sys
import time
from typing import Callable

from mrixai_jax import atomic
from mrixai_jax import overrides
from mrixai_jax import workdir as workdir_lib
from mrixai_jax.report import quality_tables
from mrixai_jax.report import study_report


@dataclasses.dataclass(frozen=True)
class Stage:
  """`run` makes the stage's outputs; a marker of a lower `output_version` (outputs of an older
  release, with fewer fields) is not reused."""
  name: str
  run: Callable[[], None]
  output_version: int = 0


def _log(message: str) -> None:
  print(f"study: {message}", file=sys.stderr, flush=True)


def run_stages(stages, workdir: pathlib.Path) -> dict:
  """Runs the stages whose marker is missing; returns `{name: {"seconds", "reused"}}`."""
  timings = {}
  for i, stage in enumerate(stages, 1):
    marker = workdir / workdir_lib.stage_marker(stage.name)
    if marker.exists():
      record = json.loads(marker.read_text())
      if record.get("output_version", 0) >= stage.output_version:
        timings[stage.name] = dict(record, reused=True)
        _log(f"[{i}/{len(stages)}] {stage.name}: done before, reused")
        continue
      _log(f"[{i}/{len(stages)}] {stage.name}: outputs of an older version ({record.get('output_version', 0)} < "
           f"{stage.output_version}): running again")
    _log(f"[{i}/{len(stages)}] {stage.name}: running")
    start = time.perf_counter()
    stage.run()
    seconds = time.perf_counter() - start
    atomic.write_json(marker, {"stage": stage.name, "seconds": seconds, "output_version": stage.output_version})
    timings[stage.name] = {"seconds": seconds, "reused": False}
    _log(f"[{i}/{len(stages)}] {stage.name}: done in {seconds:.1f} s")
  return timings


def build_stages(config, workdir: pathlib.Path) -> list:
  """The study's stages for `config` in `workdir`, in order (closures; nothing runs here)."""
  from mrixai_jax.stages import data, diffusion, evaluate, explain, heads, sample  # pylint: disable=g-import-not-at-top

  def stage(name, module, **values):
    return Stage(name, lambda: module.run(overrides.with_values(config, values), str(workdir)),
                 getattr(module, "OUTPUT_VERSION", 0))

  kinds = tuple(config.heads.kinds)
  return ([stage("data", data), stage("diffusion", diffusion), stage("samples", sample)]
          + [stage(f"heads/{kind}", heads, **{"heads.kind": kind}) for kind in kinds]
          + [stage(f"explain/{kind}", explain, **{"heads.kind": kind}) for kind in kinds]
          + [stage("evaluate", evaluate)])


def _summary(report: dict) -> str:
  """The headline numbers, one line for the image quality and one per head (the stages' lines gave the times)."""
  q = report["quality"]
  fmt = quality_tables.mean_sd
  lines = [f"PSNR {fmt(q['psnr'], 2)} dB  SSIM {fmt(q['ssim'], 4)}  LPIPS {fmt(q['lpips'], 4)}  "
               f"FID {quality_tables.number(report['fid'], 2)}  FD-VGG {quality_tables.number(report['fd_vgg'], 2)}  "
               f"Dice {fmt(report['dice'], 4)}"]
  for kind, f in report["faithfulness"].items():
    real = "" if f["real"] is None else f"; real counterparts {f['real']['mean']:.4f}"
    lines.append(f"F[{kind}] = {f['mean']:.4f} (95% CI {f['ci95'][0]:.4f}..{f['ci95'][1]:.4f}, "
                 f"{len(f['seeds'])} seeds{real}; tissue-matched random prototypes {f['null']['mean']:.4f}, "
                 f"p = {f['null']['p_value']:.3f})")
  lines += [study_report.verdict(row) for row in report["faithfulness_comparisons"]]
  return "\n".join(lines)


def run(config, workdir: str) -> dict:
  """Runs the study in `workdir`; prints the headline numbers; returns the report dict."""
  from mrixai_jax.stages import report as report_stage  # pylint: disable=g-import-not-at-top

  workdir = pathlib.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  start = time.perf_counter()
  run_stages(build_stages(config, workdir), workdir)
  report = report_stage.run(config, str(workdir))
  print(_summary(report))
  print(f"report: {workdir / workdir_lib.REPORT_SUBDIR / 'report.md'}  (total {time.perf_counter() - start:.1f} s)")
  return report
