"""Stage "report": report.json / report.md and the figures from what the other stages wrote.

Reads `eval/metrics.json`, `explain/<kind>.{json,npz}` and `explain/<kind>/seed<k>.npz` of every
head in `heads.kinds`, `samples/samples.npz` and the stage markers (their seconds go into the
report's timings); compares the heads pairwise (`aggregate.comparisons`).
"""

import json
import pathlib

import numpy as np

from mrixai_jax import workdir as workdir_lib
from mrixai_jax.explain import aggregate
from mrixai_jax.stages import explain as explain_stage
from mrixai_jax.report import study_figures, study_report


def _stage_seconds(workdir: pathlib.Path) -> dict:
  """`{stage name: seconds}` from the completion markers, in the order the stages finished."""
  markers = sorted((workdir / workdir_lib.STAGES_SUBDIR).glob("*.json"), key=lambda p: p.stat().st_mtime_ns)
  records = [json.loads(marker.read_text()) for marker in markers]
  return {record.get("stage", marker.stem): record["seconds"] for marker, record in zip(markers, records)}


def _seed_scores(workdir: pathlib.Path, kind: str, num_seeds: int) -> np.ndarray:
  """F `[S, N]` of every seed of head `kind` on the samples."""
  def faithfulness(k):
    with np.load(workdir / workdir_lib.explain_seed_file(kind, k)) as f:
      return f["faithfulness"]

  return np.stack([faithfulness(k) for k in range(num_seeds)])


def run(config, workdir: str) -> dict:
  """Writes `WORKDIR/report/`; returns the report dict."""
  workdir = pathlib.Path(workdir)
  report_dir = workdir / workdir_lib.REPORT_SUBDIR
  quality = json.loads((workdir / workdir_lib.EVAL_FILE).read_text())
  faithfulness, nis, classes, emergence, scores = {}, {}, {}, {}, {}
  for kind in config.heads.kinds:
    scores[kind] = _seed_scores(workdir, kind, int(config.explain.head_seeds))
    faithfulness[kind] = json.loads((workdir / workdir_lib.explain_file(kind, ".json")).read_text())
    with np.load(workdir / workdir_lib.explain_file(kind, ".npz")) as f:
      nis[kind], classes[kind] = f["nis"], f["prototype_class"]
      emergence[kind] = f["emergence_nis"]
  with np.load(workdir / workdir_lib.SAMPLES_FILE) as f:
    steps = f["trajectory_steps"]
    groups = explain_stage.patient_groups(f, int(config.explain.num_images))
    if explain_stage.has_counterparts(f):
      study_figures.intensity_histograms(f["samples"], f["counterparts"], f["labels"],
                                         report_dir / "intensity_histograms.png")
      figures_extra = {"Intensity per tissue: samples vs real counterparts": "intensity_histograms.png"}
    else:
      figures_extra = {}
  samples_dir = f"../{workdir_lib.SAMPLES_SUBDIR}"
  figures = {
      "Denoising trajectory: x_t and |ε̂| (Fig. 3)": f"{samples_dir}/trajectory.png",
      "Samples | mask | real counterpart": f"{samples_dir}/grid.png",
      "Faithfulness per method with 95% CI (Fig. 4)": "faithfulness.png",
      "NIS per prototype per method (Fig. 5)": "nis_per_prototype.png",
      "Faithfulness against the window size L": "faithfulness_by_window.png",
      "Prototype emergence along the trajectory: NIS and F of x̂0": "emergence.png",
      **figures_extra,
  }
  figures.update({f"Prototype gallery: {kind}": f"../{workdir_lib.head_subdir(kind)}/prototype_gallery.png"
                  for kind in config.heads.kinds})
  comparisons = aggregate.comparisons(scores, groups, config.explain)
  study_figures.faithfulness_bars(faithfulness, report_dir / "faithfulness.png")
  study_figures.nis_per_prototype(nis, classes, report_dir / "nis_per_prototype.png")
  study_figures.faithfulness_by_window(faithfulness, report_dir / "faithfulness_by_window.png")
  study_figures.emergence_curves(emergence, steps, classes, faithfulness, report_dir / "emergence.png")
  report = study_report.build_report(
      quality, faithfulness, config.to_dict(), _stage_seconds(workdir),
      {"faithfulness_comparisons": comparisons,
       "data": {"name": config.data.name, "image_size": config.data.image_size},
       "seeds": {"data": config.data.seed, "train": config.train.seed, "sample": config.sample.seed,
                 "heads": config.heads.train.seed, "explain": config.explain.seed},
       "config_text": str(config)})
  study_report.write_report(report_dir, report, figures)
  return report
