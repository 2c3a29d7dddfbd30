#!/usr/bin/env python3
"""Which diffusion recipe should the demo use? Trains the demo's UNet (configs/demo.py, same steps,
same data) once per recipe, samples the same test masks with DDIM-50 and DPM-Solver++(2M) at 10 and
20 steps, and prints a table of image quality against the real counterparts (per-tissue mean
offset, air noise, PSNR, SSIM, LPIPS, FD-VGG) with the training and sampling times.

  python -m benchmarks.recipe_ablation [--workdir runs/ablation] [--recipes eps,v_ztsnr]
      [--json docs/ablation/recipes.json] [--markdown docs/ablation/recipes.md]

Each recipe trains in `WORKDIR/<recipe>` (an existing checkpoint is reused, so an interrupted
ablation resumes; the phantom dataset is built once in `WORKDIR/tfds`); `--num_steps` changes the
training length of every recipe.
"""

import argparse
import json
import os
import sys
import time

from mrixai_jax import xla_flags

xla_flags.configure(64, ())  # as train.py on the demo config

import jax

from configs import demo

RECIPES = {  # name -> config overrides on configs/demo.py (dotted keys)
    "eps": {"diffusion.prediction": "eps"},
    "eps_minsnr": {"diffusion.prediction": "eps", "diffusion.loss_weighting": "min_snr"},
    "v": {"diffusion.prediction": "v"},
    "v_minsnr": {"diffusion.prediction": "v", "diffusion.loss_weighting": "min_snr"},
    "v_ztsnr": {"diffusion.prediction": "v", "diffusion.zero_terminal_snr": True, "sample.timestep_spacing": "trailing"},
    "v_ztsnr_minsnr": {"diffusion.prediction": "v", "diffusion.zero_terminal_snr": True,
                       "sample.timestep_spacing": "trailing", "diffusion.loss_weighting": "min_snr"},
}
SAMPLERS = {"ddim50": ("ddim", 50), "dpmpp2m10": ("dpmpp2m", 10), "dpmpp2m20": ("dpmpp2m", 20)}
BASELINE = {"diffusion.prediction": "eps", "diffusion.zero_terminal_snr": False, "diffusion.loss_weighting": "uniform",
            "sample.timestep_spacing": "leading",  # the paper's recipe; every recipe starts from it
            "data.phantom_slices_per_patient": 10}  # the demo's data when the table was measured (2026-12-07)


def recipe_config(name: str, num_steps: int = 0, tfds_dir: str = ""):
  """configs/demo.py with the paper's diffusion recipe, then the recipe's overrides."""
  from mrixai_jax import overrides  # pylint: disable=g-import-not-at-top
  config = overrides.with_values(demo.get_config(), dict(BASELINE, **RECIPES[name], task="diffusion",
                                                         **{"data.tfds_dir": tfds_dir}))
  if num_steps:
    config = overrides.with_values(config, {"train.num_steps": num_steps})
  return config


def evaluate_recipe(config, workdir: str) -> dict:
  """Trains (or reuses) the recipe in `workdir`; samples and scores each of SAMPLERS."""
  from mrixai_jax import evaluate, generate, overrides  # pylint: disable=g-import-not-at-top
  from mrixai_jax.training import tasks  # pylint: disable=g-import-not-at-top

  start = time.perf_counter()
  tasks.train(config, workdir)
  row = {"train_seconds": time.perf_counter() - start, "samplers": {}}
  for name, (sampler, steps) in SAMPLERS.items():
    sample_config = overrides.with_values(config, {"sample.sampler": sampler, "sample.num_steps": steps})
    masks = generate.select_masks(sample_config, workdir)
    start = time.perf_counter()
    result = generate.sample_from_checkpoint(sample_config, workdir, masks["labels"])
    seconds = time.perf_counter() - start
    table = evaluate.compute_table(result["samples"], masks["counterparts"], masks["labels"], config)
    row["samplers"][name] = {
        "sample_seconds": seconds, "psnr": table["psnr"]["mean"], "ssim": table["ssim"]["mean"],
        "lpips": table["lpips"]["mean"], "fd_vgg": table["fd_vgg"], "dice": table["dice"]["mean"],
        "intensity_diff": {k: v["diff"] for k, v in table["intensity"].items()},
        "air_sd_ratio": table["air"]["sd_ratio"]}
  return row


def markdown(results: dict) -> str:
  lines = ["| recipe | sampler | Δ background | Δ fat | Δ FGT | Δ vessels | air SD ratio | PSNR (dB) | SSIM | LPIPS "
           "| FD-VGG | train (s) | sample (s) |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
  for recipe, row in results.items():
    for sampler, r in row["samplers"].items():
      d = r["intensity_diff"]
      lines.append(f"| {recipe} | {sampler} | {d['background']:+.3f} | {d['fat']:+.3f} | {d['fgt']:+.3f} | "
                   f"{d['vessels']:+.3f} | {r['air_sd_ratio']:.2f} | {r['psnr']:.2f} | {r['ssim']:.3f} | "
                   f"{r['lpips']:.3f} | {r['fd_vgg']:.1f} | {row['train_seconds']:.0f} | {r['sample_seconds']:.1f} |")
  return "\n".join(lines) + "\n"


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--workdir", default="runs/ablation")
  parser.add_argument("--recipes", default=",".join(RECIPES))
  parser.add_argument("--num_steps", type=int, default=0, help="training steps per recipe (0: the demo's)")
  parser.add_argument("--json", default="")
  parser.add_argument("--markdown", default="")
  args = parser.parse_args()
  from mrixai_jax import atomic  # pylint: disable=g-import-not-at-top

  results = json.load(open(args.json)) if args.json and os.path.exists(args.json) else {}
  for name in args.recipes.split(","):
    print(f"recipe {name}: training and sampling", file=sys.stderr, flush=True)
    config = recipe_config(name, args.num_steps, os.path.abspath(os.path.join(args.workdir, "tfds")))
    results[name] = evaluate_recipe(config, os.path.join(args.workdir, name))
    if args.json:
      atomic.write_json(args.json, results)
    print(markdown({name: results[name]}), flush=True)
  table = markdown(results)
  print(f"{jax.device_count()} device(s), {jax.default_backend()}\n{table}")
  if args.markdown:
    atomic.write_text(args.markdown, table)


if __name__ == "__main__":
  main()
