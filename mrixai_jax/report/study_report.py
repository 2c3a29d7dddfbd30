"""The study report: `report.json` (stable schema, ARCHITECTURE.md) and a readable `report.md`."""

import importlib.metadata
import platform

from mrixai_jax import atomic
from mrixai_jax.report import quality_tables

HEAD_TITLES = {"ppnet": "ProtoPNet", "eppnet": "Enhanced ProtoPNet", "protopool": "ProtoPool"}
VERSIONED_PACKAGES = ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "numpy", "scikit-image",
                      "pydicom", "mrixai-jax")


def versions() -> dict:
  """Python, platform, devices and the versions of the packages the numbers depend on."""
  import jax  # pylint: disable=g-import-not-at-top

  out = {"python": platform.python_version(), "platform": platform.platform(),
         "devices": [str(d) for d in jax.devices()]}
  for name in VERSIONED_PACKAGES:
    try:
      out[name] = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
      out[name] = None
  return out


def build_report(quality: dict, faithfulness: dict, config: dict, timings_s: dict, extra: dict) -> dict:
  """Assembles the report.json object.

  quality: `{"psnr"|"ssim"|"lpips"|"dice": {"mean","sd"}, "fid": float|None, "fd_vgg": float|None}`
  and, with counterparts, "quality_reference", "intensity", "air" (`evaluate.compute_table`);
  faithfulness: `{head: aggregate.head_summary(...)}` (mean, ci95, seeds, per_seed_mean, real,
  generated_minus_real, nis, controls); extra: additional sections (faithfulness_comparisons, data,
  seeds, figures) kept verbatim.
  """
  report = {
      "quality": {k: quality[k] for k in ("psnr", "ssim", "lpips")},
      "fid": quality.get("fid"),
      "fd_vgg": quality.get("fd_vgg"),
      "dice": quality["dice"],
      "quality_reference": quality.get("quality_reference"),
      "intensity": quality.get("intensity"),
      "air": quality.get("air"),
      "faithfulness": faithfulness,
      "config": config,
      "timings_s": timings_s,
      "versions": versions(),
  }
  report.update(extra)
  return report


def _fmt(value, digits: int = 4) -> str:
  return quality_tables.number(value, digits)


def _pm(stat: dict, digits: int = 4) -> str:
  return quality_tables.mean_sd(stat, digits)


def _ci(interval) -> str:
  return "n/a" if interval is None else f"[{interval[0]:.4f}, {interval[1]:.4f}]"


def _title(head: str) -> str:
  return HEAD_TITLES.get(head, head)


def verdict(row: dict) -> str:
  """One pairwise comparison as a sentence from its numbers (`aggregate.comparisons` row)."""
  lo, hi = row["ci95"]
  text = (f"{_title(row['a'])} vs {_title(row['b'])}: Δ = {row['diff']:.4f}, 95% CI {_ci(row['ci95'])}, "
          f"Holm p = {row['p_holm']:.4f}")
  if lo <= 0.0 <= hi:
    return text + ": no difference shown"
  return text + f": {_title(row['a'] if row['diff'] > 0 else row['b'])} higher"


def _with_ci(stat, key: str = "mean") -> str:
  """"value [lo, hi]" of a `{key, "ci95"}` statistic; "n/a" where it is missing or undefined."""
  if stat is None or stat.get(key) is None:
    return "n/a"
  return f"{stat[key]:.4f} {_ci(stat['ci95'])}"


def faithfulness_lines(report: dict) -> list:
  """The faithfulness tables (samples, real counterparts and their paired difference; controls and
  diagnostics; F per window size) and the pairwise verdicts."""
  heads = report["faithfulness"]
  lines = ["| method | seeds | F samples (95% CI) | F real counterparts (95% CI) | samples − real (95% CI, p) |",
           "|---|---|---|---|---|"]
  for head, f in heads.items():
    diff = f.get("generated_minus_real")
    diff_text = "n/a" if diff is None else f"{_with_ci(diff)}, p = {diff['p_value']:.4f}"
    lines.append(f"| {_title(head)} | {len(f['seeds'])} | {_with_ci(f)} | {_with_ci(f.get('real'))} | {diff_text} |")
  lines += ["", "| method | null: random prototypes of the same tissue (central 95%), p | deletion drop: top / "
            "random windows, top − random (95% CI), p | tissue purity (95% CI) / chance | emergence: half-rise "
            "step (95% CI) | effective prototypes | top-1 ρ |", "|---|---|---|---|---|---|---|"]
  for head, f in heads.items():
    null, dele, purity, nis = f["null"], f["deletion"], f["tissue_purity"], f["nis"]
    emergence = f.get("emergence")
    emergence_text = "n/a" if emergence is None or emergence["value"] is None else (
        f"{emergence['value']:.1f} {_ci_steps(emergence['ci95'])} of {emergence['steps'][-1]}")
    lines.append(f"| {_title(head)} | {null['mean']:.4f} {_ci(null['quantiles95'])}, p = {null['p_value']:.3f} "
                 f"({null['draws']} draws) | {dele['drop_top']:.4f} / {dele['drop_random']:.4f}, "
                 f"{_ci(dele['ci95_diff'])}, p = {dele['p_value']:.4f} | {_with_ci(purity, 'value')} / "
                 f"{purity['chance']:.4f} | {emergence_text} | {nis['effective_prototypes']:.2f} | "
                 f"{nis['top1_rho']:.4f} |")
  sizes = list(next(iter(heads.values()))["by_window"])
  lines += ["", "| method | " + " | ".join(f"F at L = {size} px" for size in sizes) + " |",
            "|---|" + "---|" * len(sizes)]
  lines += [f"| {_title(head)} | " + " | ".join(_with_ci(f["by_window"][size]) for size in sizes) + " |"
            for head, f in heads.items()]
  lines += ["", f"Headline window L = {next(iter(heads.values()))['window']} px. CIs: two-level bootstrap (seeds × "
            "patients); p: patient-level sign-flip permutation test (null: one-sided, the share of random-prototype "
            "draws reaching the observed F); pairwise p-values Holm-corrected over the comparisons.", ""]
  lines += [f"- {verdict(row)}" for row in report["faithfulness_comparisons"]]
  return lines


def _ci_steps(interval) -> str:
  return "n/a" if interval is None else f"[{interval[0]:.1f}, {interval[1]:.1f}]"


def render_markdown(report: dict, figures: dict) -> str:
  """report.md: Table 1, the faithfulness table with its controls, the figures, provenance."""
  q = report["quality"]
  lines = ["# mrixai-jax study report", "",
           "## Table 1 — image quality of generated slices vs their real counterparts", "",
           *quality_tables.table_1(dict(report, **q)),
           *quality_tables.reference_and_intensity_lines(report), "",
           "## Faithfulness F = Σ_j NIS_j · ρ_j per method", "", *faithfulness_lines(report)]
  lines += ["", "## Figures", ""]
  lines += [f"### {title}\n\n![{title}]({name})\n" for title, name in figures.items()]
  lines += ["## Timings (s)", "", "| stage | seconds |", "|---|---|"]
  lines += [f"| {stage} | {sec:.1f} |" for stage, sec in report["timings_s"].items()]
  lines += ["", "## Versions", "", "```", *(f"{k}: {v}" for k, v in report["versions"].items()), "```",
            "", "## Config", "", "```", str(report.get("config_text", report["config"])), "```", ""]
  return "\n".join(lines)


def write_report(report_dir, report: dict, figures: dict) -> None:
  """Writes report.json and report.md into `report_dir` atomically. figures: {title: file name}."""
  atomic.write_json(report_dir / "report.json", {k: v for k, v in report.items() if k != "config_text"})
  atomic.write_text(report_dir / "report.md", render_markdown(report, figures))
