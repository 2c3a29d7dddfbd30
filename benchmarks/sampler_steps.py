#!/usr/bin/env python3
"""Image quality against the number of sampler steps, for one trained workdir: DDIM and
DPM-Solver++(2M) at several step counts on the same masks and initial noise, FD-VGG / PSNR / SSIM,
air noise ratio and the largest per-tissue mean offset against the real counterparts, plus the
seed-to-seed spread (DDIM-50 with other seeds).

  python benchmarks/sampler_steps.py --workdir runs/demo [--config configs/demo.py | --recipe v_ztsnr] [--num 90]
      [--steps 5,10,20,50,100] [--figure docs/images/quality_vs_steps.png] [--json PATH] [--markdown PATH]

The masks are the first `--num` distinct slices of `sample.split` (all of them when fewer).
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mrixai_jax import xla_flags  # noqa: E402

xla_flags.configure(64, ())  # as sample.py on the demo config (one device: no host-device split)

import numpy as np  # noqa: E402

SAMPLERS = ("ddim", "dpmpp2m")
SPREAD_SEEDS = (1, 2)  # DDIM-50 reruns with other initial noise: how much FD-VGG moves by chance


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


def measure(config, workdir: str, num: int, steps: list) -> dict:
  from mrixai_jax import evaluate, generate, overrides  # pylint: disable=g-import-not-at-top
  from mrixai_jax.data import pipeline  # pylint: disable=g-import-not-at-top
  from mrixai_jax.metrics import intensity  # pylint: disable=g-import-not-at-top

  split = pipeline.load_split(config.data, config.sample.split, workdir)
  rows = np.arange(min(num, len(split["labels"])))
  labels, real = np.asarray(split["labels"][rows]), np.asarray(split["image"][rows], np.float32)
  quality_config = overrides.with_values(config, {"metrics.fid": False})

  def score(sampler: str, num_steps: int, seed: int) -> dict:
    c = overrides.with_values(config, {"sample.sampler": sampler, "sample.num_steps": num_steps, "sample.seed": seed})
    start = time.perf_counter()
    samples = generate.sample_from_checkpoint(c, workdir, labels)["samples"]
    seconds = time.perf_counter() - start
    paired = evaluate.paired_metrics(samples, real, quality_config)
    distances, _ = evaluate.set_distances(real, samples, quality_config)
    air = intensity.air_statistics(samples, real, float(config.metrics.air_threshold))["sd_ratio"]
    offset = max(abs(v["diff"]) for v in intensity.intensity_table(samples, real, labels).values()
                 if v["diff"] is not None)
    row = {"sampler": sampler, "steps": num_steps, "seed": seed, "fd_vgg": distances["fd_vgg"],
           "psnr": float(np.mean(paired["psnr"])), "ssim": float(np.mean(paired["ssim"])), "air_sd_ratio": air,
           "max_tissue_offset": offset, "seconds": seconds}
    print(f"{sampler:<8} {num_steps:>4} steps  seed {seed}  FD-VGG {row['fd_vgg']:7.2f}  PSNR {row['psnr']:5.2f}  "
          f"SSIM {row['ssim']:.3f}  air SD x{air:.2f}  max |Δ tissue| {offset:.3f}  {seconds:5.1f} s", flush=True)
    return row

  rows_out = [score(s, k, int(config.sample.seed)) for s in SAMPLERS for k in steps]
  rows_out += [score("ddim", 50, int(config.sample.seed) + k) for k in SPREAD_SEEDS]
  return {"num_images": int(len(rows)), "rows": rows_out}


def figure(result: dict, path: str) -> None:
  from mrixai_jax.report import atomic  # pylint: disable=g-import-not-at-top
  from mrixai_jax.report import figures as figures_lib  # pylint: disable=g-import-not-at-top
  plt = figures_lib.pyplot()
  fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
  base_seed = min(r["seed"] for r in result["rows"])
  for sampler, colour in zip(SAMPLERS, ("#3070b0", "#d05020")):
    rows = sorted((r for r in result["rows"] if r["sampler"] == sampler and r["seed"] == base_seed),
                  key=lambda r: r["steps"])
    for ax, key in zip(axes, ("fd_vgg", "psnr")):
      ax.plot([r["steps"] for r in rows], [r[key] for r in rows], "o-", color=colour, label=sampler)
  spread = [r["fd_vgg"] for r in result["rows"] if r["sampler"] == "ddim" and r["steps"] == 50]
  axes[0].errorbar([50], [np.mean(spread)], yerr=[[np.mean(spread) - min(spread)], [max(spread) - np.mean(spread)]],
                   fmt="none", ecolor="#3070b0", capsize=5, label=f"DDIM-50 over {len(spread)} seeds")
  for ax, label in zip(axes, ("FD-VGG ↓", "PSNR vs counterpart (dB) ↑")):
    ax.set_xscale("log")
    ax.set_xlabel("sampler steps (network evaluations)")
    ax.set_ylabel(label)
    ax.legend(fontsize=8)
  fig.suptitle(f"Quality against sampler steps ({result['num_images']} test masks, same initial noise)", fontsize=10)
  atomic.save_figure(fig, path)


def markdown(result: dict) -> str:
  """The rows as a markdown table (one line per sampler, steps and seed)."""
  lines = [f"Quality against sampler steps on {result['num_images']} test masks (same initial noise per seed).", "",
           "| sampler | steps | seed | FD-VGG | PSNR (dB) | SSIM | air SD ratio | max abs tissue offset | seconds |",
           "|---|---|---|---|---|---|---|---|---|"]
  for r in result["rows"]:
    lines.append(f"| {r['sampler']} | {r['steps']} | {r['seed']} | {r['fd_vgg']:.1f} | {r['psnr']:.2f} | "
                 f"{r['ssim']:.3f} | {r['air_sd_ratio']:.2f} | {r['max_tissue_offset']:.3f} | {r['seconds']:.1f} |")
  return "\n".join(lines) + "\n"


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--config", default="configs/demo.py", help="the config the workdir was trained with")
  parser.add_argument("--recipe", default="", help="instead of --config: a recipe of benchmarks/recipe_ablation.py")
  parser.add_argument("--tfds_dir", default="", help="with --recipe: where its phantom dataset was built")
  parser.add_argument("--num", type=int, default=90)
  parser.add_argument("--steps", default="5,10,20,50,100")
  parser.add_argument("--figure", default="")
  parser.add_argument("--json", default="")
  parser.add_argument("--markdown", default="")
  args = parser.parse_args()
  from mrixai_jax.report import atomic  # pylint: disable=g-import-not-at-top
  result = measure(_config(args), args.workdir, args.num, [int(s) for s in args.steps.split(",")])
  if args.json:
    atomic.write_json(args.json, result)
  if args.markdown:
    atomic.write_text(args.markdown, markdown(result))
  if args.figure:
    figure(result, args.figure)
  print(json.dumps(result["rows"]))


if __name__ == "__main__":
  main()
