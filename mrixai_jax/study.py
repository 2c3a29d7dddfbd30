"""The one-command study (`explain.py`): every missing stage in WORKDIR, then the report.

Stages (each reused when its completion marker `WORKDIR/stages/<name>.json` exists; an interrupted
stage has no marker and runs again, resuming from its own checkpoints):
  data → diffusion → samples → heads/<kind> (each head) → explain/<kind> → evaluate → report
`explain.py --overwrite` with a changed config first removes the markers and outputs computed from
the changed sections (`mrixai_jax.workdir.PRODUCTS`), so those stages run again.
"""

import dataclasses
import json
import pathlib
import sys
import time
from typing import Callable

import numpy as np

from mrixai_jax import atomic
from mrixai_jax import overrides
from mrixai_jax.report import quality_tables
from mrixai_jax.workdir import STAGES_SUBDIR  # markers live where --overwrite clears them

EXPLAIN_SUBDIR = "explain"
REPORT_SUBDIR = "report"


@dataclasses.dataclass(frozen=True)
class Stage:
  name: str
  run: Callable[[], None]


def _log(message: str) -> None:
  print(f"study: {message}", file=sys.stderr, flush=True)


def _marker(workdir: pathlib.Path, name: str) -> pathlib.Path:
  return workdir / STAGES_SUBDIR / (name.replace("/", "_") + ".json")


def run_stages(stages, workdir: pathlib.Path) -> dict:
  """Runs the stages whose marker is missing; returns `{name: {"seconds", "reused"}}`."""
  timings = {}
  for i, stage in enumerate(stages, 1):
    marker = _marker(workdir, stage.name)
    if marker.exists():
      timings[stage.name] = dict(json.loads(marker.read_text()), reused=True)
      _log(f"[{i}/{len(stages)}] {stage.name}: done before, reused")
      continue
    _log(f"[{i}/{len(stages)}] {stage.name}: running")
    start = time.perf_counter()
    stage.run()
    seconds = time.perf_counter() - start
    atomic.write_json(marker, {"seconds": seconds})
    timings[stage.name] = {"seconds": seconds, "reused": False}
    _log(f"[{i}/{len(stages)}] {stage.name}: done in {seconds:.1f} s")
  return timings


def _explain_stage(config, workdir: pathlib.Path, kind: str) -> None:
  from mrixai_jax.data import pipeline  # pylint: disable=g-import-not-at-top
  from mrixai_jax.explain import head_explainer  # pylint: disable=g-import-not-at-top
  from mrixai_jax.training import heads_task  # pylint: disable=g-import-not-at-top

  with np.load(workdir / "samples" / "samples.npz") as f:
    num = min(int(config.explain.num_images), len(f["samples"]))
    samples, trajectory_x0 = f["samples"][:num], f["trajectory_x0"][:num]
  train_images = pipeline.load_split(config.data, "train", str(workdir))["image"]
  model, params, record = heads_task.load(config, str(workdir), kind, samples.shape[1])
  explainer = head_explainer.HeadExplainer(model, params, record, int(config.metrics.batch_size))
  arrays, summary = head_explainer.explain(explainer, samples, trajectory_x0, train_images, config.explain)
  out = workdir / EXPLAIN_SUBDIR
  with atomic.atomic_path(out / f"{kind}.npz", suffix=".npz") as tmp:
    np.savez(tmp, sample_index=np.arange(num), **arrays)
  atomic.write_json(out / f"{kind}.json", summary)


def build_stages(config, workdir: pathlib.Path) -> list:
  """The study's stages for `config` in `workdir` (closures; nothing runs here)."""
  from mrixai_jax.data import pipeline  # pylint: disable=g-import-not-at-top

  def data():
    for split in ("train", "test"):
      arrays = pipeline.load_split(config.data, split, str(workdir))
      _log(f"data: {split} split has {len(arrays['image'])} slices")

  def diffusion():
    from mrixai_jax.training import tasks  # pylint: disable=g-import-not-at-top
    tasks.train(overrides.with_values(config, {"task": "diffusion"}), str(workdir))

  def samples():
    from mrixai_jax import generate  # pylint: disable=g-import-not-at-top
    generate.run(config, str(workdir))

  def head(kind):
    def run():
      from mrixai_jax.training import tasks  # pylint: disable=g-import-not-at-top
      tasks.train(overrides.with_values(config, {"task": "heads", "heads.kind": kind}), str(workdir))
    return run

  def evaluate():
    from mrixai_jax import evaluate as evaluate_lib  # pylint: disable=g-import-not-at-top
    evaluate_lib.run(config, str(workdir))

  stages = [Stage("data", data), Stage("diffusion", diffusion), Stage("samples", samples)]
  stages += [Stage(f"heads/{kind}", head(kind)) for kind in config.heads.kinds]
  stages += [Stage(f"explain/{kind}", lambda kind=kind: _explain_stage(config, workdir, kind))
             for kind in config.heads.kinds]
  stages.append(Stage("evaluate", evaluate))
  return stages


def write_report(config, workdir: pathlib.Path, timings: dict) -> dict:
  """Assembles report.json / report.md and the figures from the stages' outputs."""
  from mrixai_jax.report import study_figures, study_report  # pylint: disable=g-import-not-at-top

  report_dir = workdir / REPORT_SUBDIR
  quality = json.loads((workdir / "eval" / "metrics.json").read_text())
  faithfulness, nis, classes, emergence = {}, {}, {}, {}
  for kind in config.heads.kinds:
    faithfulness[kind] = json.loads((workdir / EXPLAIN_SUBDIR / f"{kind}.json").read_text())
    with np.load(workdir / EXPLAIN_SUBDIR / f"{kind}.npz") as f:
      nis[kind], classes[kind] = f["nis"], f["prototype_class"]
      emergence[kind] = f["emergence_nis"]
  with np.load(workdir / "samples" / "samples.npz") as f:
    steps = f["trajectory_steps"]
    if "counterparts" in f.files and f["counterparts"].size:
      study_figures.intensity_histograms(f["samples"], f["counterparts"], f["labels"],
                                         report_dir / "intensity_histograms.png")
      figures_extra = {"Intensity per tissue: samples vs real counterparts": "intensity_histograms.png"}
    else:
      figures_extra = {}
  figures = {
      "Denoising trajectory: x_t and |ε̂| (Fig. 3)": "../samples/trajectory.png",
      "Samples | mask | real counterpart": "../samples/grid.png",
      "Faithfulness per method with 95% CI (Fig. 4)": "faithfulness.png",
      "NIS per prototype per method (Fig. 5)": "nis_per_prototype.png",
      "Prototype emergence along the trajectory": "emergence.png",
      **figures_extra,
  }
  figures.update({f"Prototype gallery: {kind}": f"../heads/{kind}/prototype_gallery.png"
                  for kind in config.heads.kinds})
  study_figures.faithfulness_bars(faithfulness, report_dir / "faithfulness.png")
  study_figures.nis_per_prototype(nis, classes, report_dir / "nis_per_prototype.png")
  study_figures.emergence_curves(emergence, steps, classes, report_dir / "emergence.png")
  report = study_report.build_report(
      quality, faithfulness, config.to_dict(), {k: v["seconds"] for k, v in timings.items()},
      {"data": {"name": config.data.name, "image_size": config.data.image_size},
       "seeds": {"data": config.data.seed, "train": config.train.seed, "sample": config.sample.seed,
                 "heads": config.heads.train.seed, "explain": config.explain.seed},
       "config_text": str(config)})
  study_report.write_report(report_dir, report, figures)
  return report


def _summary_table(timings: dict, report: dict) -> str:
  lines = [f"{'stage':<20} {'status':<8} {'seconds':>8}"]
  lines += [f"{name:<20} {'reused' if t['reused'] else 'ran':<8} {t['seconds']:>8.1f}"
            for name, t in timings.items()]
  q = report["quality"]
  fmt = quality_tables.mean_sd
  lines.append(f"PSNR {fmt(q['psnr'], 2)} dB  SSIM {fmt(q['ssim'], 4)}  LPIPS {fmt(q['lpips'], 4)}  "
               f"FID {quality_tables.number(report['fid'], 2)}  FD-VGG {quality_tables.number(report['fd_vgg'], 2)}  "
               f"Dice {fmt(report['dice'], 4)}")
  for kind, f in report["faithfulness"].items():
    lines.append(f"F[{kind}] = {f['mean']:.4f} (95% CI {f['ci95'][0]:.4f}..{f['ci95'][1]:.4f}; "
                 f"random prototypes {f['randomized_mean']:.4f})")
  return "\n".join(lines)


def run(config, workdir: str) -> dict:
  """Runs the study in `workdir`; prints a summary table; returns the report dict."""
  workdir = pathlib.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  start = time.perf_counter()
  timings = run_stages(build_stages(config, workdir), workdir)
  report = write_report(config, workdir, timings)
  print(_summary_table(timings, report))
  print(f"report: {workdir / REPORT_SUBDIR / 'report.md'}  (total {time.perf_counter() - start:.1f} s)")
  return report
