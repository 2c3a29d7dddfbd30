#!/usr/bin/env python3
"""Image quality against the number of sampler steps, for one trained workdir: DDIM (η = 0 and 1)
and (SDE-)DPM-Solver++(2M) with and without Karras sigmas at several step counts on the same masks
and initial noise, FD-VGG / PSNR / SSIM, air noise ratio and the largest per-tissue mean offset
against the real counterparts, plus the seed-to-seed spread of chosen rows (other seeds).

  python -m benchmarks.sampler_steps --workdir runs/demo [--config configs/demo.py | --recipe v_ztsnr] [--num 90]
      [--variants ddim,...] [--steps 10,20,50] [--spread ddim:50,...] [--figure docs/images/quality_vs_steps.png] [--json PATH] [--markdown PATH]

The masks are the first `--num` distinct slices of `sample.split` (all of them when fewer).
"""

import argparse
import json
import time

from mrixai_jax import xla_flags

xla_flags.configure(64, ())  # as sample.py on the demo config (one device: no host-device split)

import numpy as np

VARIANTS = {  # name -> sample.* settings on top of the config's
    "ddim": {"sample.sampler": "ddim", "sample.eta": 0.0},
    "ddim_eta1": {"sample.sampler": "ddim", "sample.eta": 1.0},
    "dpmpp2m": {"sample.sampler": "dpmpp2m", "sample.karras_sigmas": False},
    "dpmpp2m_karras": {"sample.sampler": "dpmpp2m", "sample.karras_sigmas": True},
    "dpmpp2m_sde_karras": {"sample.sampler": "dpmpp2m_sde", "sample.karras_sigmas": True},
}
COLOURS = ("#3070b0", "#70a8e0", "#d05020", "#e09040", "#40a040")
SPREAD = "ddim:50,ddim_eta1:50,dpmpp2m_sde_karras:20"  # variant:steps rerun with more seeds
SPREAD_SEEDS = (1, 2)  # the extra initial-noise seeds: how much FD-VGG moves by chance


def _config(args):
  """The recipe's config (`recipe_ablation.recipe_config`) or the `--config` file's."""
  if args.recipe:
    from benchmarks import recipe_ablation  # pylint: disable=g-import-not-at-top
    return recipe_ablation.recipe_config(args.recipe, tfds_dir=args.tfds_dir)
  import importlib.util  # pylint: disable=g-import-not-at-top
  spec = importlib.util.spec_from_file_location("sampler_steps_config", args.config)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def measure(config, workdir: str, num: int, variants: list, steps: list, spread: list) -> dict:
  """One row per (variant, steps) with the config's seed, plus `spread` (variant, steps) pairs
  with each of SPREAD_SEEDS."""
  from mrixai_jax import evaluate, generate, overrides  # pylint: disable=g-import-not-at-top
  from mrixai_jax.data import pipeline  # pylint: disable=g-import-not-at-top
  from mrixai_jax.metrics import intensity  # pylint: disable=g-import-not-at-top

  split = pipeline.load_split(config.data, config.sample.split, workdir)
  rows = np.arange(min(num, len(split["labels"])))
  labels, real = np.asarray(split["labels"][rows]), np.asarray(split["image"][rows], np.float32)
  quality_config = overrides.with_values(config, {"metrics.fid": False})

  def score(variant: str, num_steps: int, seed: int) -> dict:
    c = overrides.with_values(config, dict(VARIANTS[variant], **{"sample.num_steps": num_steps, "sample.seed": seed}))
    start = time.perf_counter()
    samples = generate.sample_from_checkpoint(c, workdir, labels)["samples"]
    seconds = time.perf_counter() - start
    paired = evaluate.paired_metrics(samples, real, quality_config)
    distances, _ = evaluate.set_distances(real, samples, quality_config)
    air = intensity.air_statistics(samples, real, float(config.metrics.air_threshold))["sd_ratio"]
    offset = max(abs(v["diff"]) for v in intensity.intensity_table(samples, real, labels).values()
                 if v["diff"] is not None)
    row = {"variant": variant, "steps": num_steps, "seed": seed, "fd_vgg": distances["fd_vgg"],
           "psnr": float(np.mean(paired["psnr"])), "ssim": float(np.mean(paired["ssim"])), "air_sd_ratio": air,
           "max_tissue_offset": offset, "seconds": seconds}
    print(f"{variant:<19} {num_steps:>4} steps  seed {seed}  FD-VGG {row['fd_vgg']:7.2f}  PSNR {row['psnr']:5.2f}  "
          f"SSIM {row['ssim']:.3f}  air SD x{air:.2f}  max |Δ tissue| {offset:.3f}  {seconds:5.1f} s", flush=True)
    return row

  seed = int(config.sample.seed)
  rows_out = [score(v, k, seed) for v in variants for k in steps]
  rows_out += [score(v, k, seed + extra) for v, k in spread for extra in SPREAD_SEEDS]
  return {"num_images": int(len(rows)), "rows": rows_out}


def seed_summary(result: dict) -> list:
  """`[(variant, steps, n_seeds, mean FD-VGG, SD)]` for every (variant, steps) run with several seeds."""
  groups = {}
  for r in result["rows"]:
    groups.setdefault((r["variant"], r["steps"]), []).append(r["fd_vgg"])
  return [(v, k, len(fd), float(np.mean(fd)), float(np.std(fd, ddof=1))) for (v, k), fd in groups.items()
          if len(fd) > 1]


def figure(result: dict, path: str) -> None:
  from mrixai_jax import atomic  # pylint: disable=g-import-not-at-top
  from mrixai_jax.report import figures as figures_lib  # pylint: disable=g-import-not-at-top
  plt = figures_lib.pyplot()
  fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
  base_seed = min(r["seed"] for r in result["rows"])
  variants = list(dict.fromkeys(r["variant"] for r in result["rows"]))
  for variant, colour in zip(variants, COLOURS):
    rows = sorted((r for r in result["rows"] if r["variant"] == variant and r["seed"] == base_seed),
                  key=lambda r: r["steps"])
    for ax, key in zip(axes, ("fd_vgg", "psnr", "air_sd_ratio")):
      ax.plot([r["steps"] for r in rows], [r[key] for r in rows], "o-", color=colour, label=variant)
  for variant, steps, n, mean, sd in seed_summary(result):
    colour = COLOURS[variants.index(variant) % len(COLOURS)]
    axes[0].errorbar([steps], [mean], yerr=[sd], fmt="s", color=colour, capsize=5, markersize=4)
  steps = sorted({r["steps"] for r in result["rows"]})
  for ax, title in zip(axes, ("FD-VGG ↓ (squares: mean ± SD over seeds)", "PSNR vs counterpart (dB) ↑",
                              "air pixel SD, sample / real ↓")):
    ax.set_xscale("log")
    ax.set_xticks(steps, [str(k) for k in steps])
    ax.minorticks_off()
    ax.set_xlabel("sampler steps (network evaluations)")
    ax.set_title(title, fontsize=9)
  axes[0].legend(fontsize=7)
  fig.tight_layout(rect=(0, 0, 1, 0.93))
  fig.suptitle(f"Quality against sampler steps ({result['num_images']} test masks, same initial noise)", fontsize=10)
  atomic.save_figure(fig, path)


def markdown(result: dict) -> str:
  """The rows and the seed summary as markdown tables."""
  lines = [f"Quality against sampler steps on {result['num_images']} test masks (same initial noise per seed).", "",
           "| variant | steps | seed | FD-VGG | PSNR (dB) | SSIM | air SD ratio | max abs tissue offset | seconds |",
           "|---|---|---|---|---|---|---|---|---|"]
  for r in result["rows"]:
    lines.append(f"| {r['variant']} | {r['steps']} | {r['seed']} | {r['fd_vgg']:.1f} | {r['psnr']:.2f} | "
                 f"{r['ssim']:.3f} | {r['air_sd_ratio']:.2f} | {r['max_tissue_offset']:.3f} | {r['seconds']:.1f} |")
  lines += ["", "FD-VGG over seeds:", "", "| variant | steps | seeds | mean | SD |", "|---|---|---|---|---|"]
  lines += [f"| {v} | {k} | {n} | {mean:.2f} | {sd:.2f} |" for v, k, n, mean, sd in seed_summary(result)]
  return "\n".join(lines) + "\n"


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--config", default="configs/demo.py", help="the config the workdir was trained with")
  parser.add_argument("--recipe", default="", help="instead of --config: a recipe of benchmarks/recipe_ablation.py")
  parser.add_argument("--tfds_dir", default="", help="with --recipe: where its phantom dataset was built")
  parser.add_argument("--num", type=int, default=90)
  parser.add_argument("--variants", default=",".join(VARIANTS), help=f"of {', '.join(VARIANTS)}")
  parser.add_argument("--steps", default="10,20,50")
  parser.add_argument("--spread", default=SPREAD, help="variant:steps pairs rerun with the seeds SPREAD_SEEDS")
  parser.add_argument("--figure", default="")
  parser.add_argument("--json", default="")
  parser.add_argument("--markdown", default="")
  args = parser.parse_args()
  from mrixai_jax import atomic  # pylint: disable=g-import-not-at-top
  spread = [(v, int(k)) for v, k in (p.split(":") for p in args.spread.split(",") if p)]
  result = measure(_config(args), args.workdir, args.num, args.variants.split(","),
                   [int(s) for s in args.steps.split(",")], spread)
  if args.json:
    atomic.write_json(args.json, result)
  if args.markdown:
    atomic.write_text(args.markdown, markdown(result))
  if args.figure:
    figure(result, args.figure)
  print(json.dumps(result["rows"]))


if __name__ == "__main__":
  main()
