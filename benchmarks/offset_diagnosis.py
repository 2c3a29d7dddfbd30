#!/usr/bin/env python3
"""Root-cause diagnosis of the demo's former intensity offset (docs/ablation/README.md): one trained
workdir of the paper's ε recipe, sampled on 32 test masks under variants that each rule a
candidate in or out (x̂0 clipping, DDIM's last step and spacing, more steps, a start x_T carrying the
real image's signal as in training, EMA vs raw weights, earlier checkpoints), with the per-tissue
mean difference, air noise ratio, PSNR, SSIM and FD-VGG against the real counterparts.

  python train.py --config=configs/demo.py --workdir=W --config.diffusion.prediction=eps \\
      --config.diffusion.zero_terminal_snr=False --config.diffusion.loss_weighting=uniform \\
      --config.sample.timestep_spacing=leading --config.data.phantom_slices_per_patient=10
  python -m benchmarks.offset_diagnosis W
"""

import os
import sys

from mrixai_jax import xla_flags

xla_flags.configure(64, ())

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

from benchmarks import recipe_ablation
from mrixai_jax import metrics
from mrixai_jax.data import pipeline
from mrixai_jax.diffusion import parameterization, sampling
from mrixai_jax.diffusion import schedule as schedule_lib
from mrixai_jax.diffusion.conditioning import one_hot_labels
from mrixai_jax.metrics import frechet, intensity
from mrixai_jax.models import unet as unet_lib
from mrixai_jax.training import checkpoint

NUM_IMAGES = 32
AIR = -0.8


def main() -> None:
  workdir = sys.argv[1]
  config = recipe_ablation.recipe_config("eps")
  test, train = (pipeline.load_split(config.data, split, workdir) for split in ("test", "train"))
  rows = np.random.default_rng(0).permutation(len(test["labels"]))[:NUM_IMAGES]
  labels, real = np.asarray(test["labels"][rows]), np.asarray(test["image"][rows], np.float32)
  cond = one_hot_labels(jnp.asarray(labels))
  keys = sampling.image_keys(jax.random.PRNGKey(0), 0, NUM_IMAGES)
  noise = np.asarray(sampling.initial_noise(keys, real.shape[1:]))
  schedule = schedule_lib.from_config(config.diffusion)
  model_fn = unet_lib.model_fn(unet_lib.build_model(config))
  apply = jax.jit(lambda p, x, t: model_fn(p, x, t, cond))

  def report(samples, name):
    diff = {k: v["diff"] for k, v in intensity.intensity_table(samples, real, labels).items()}
    air = intensity.air_statistics(samples, real, AIR)["sd_ratio"]
    print(f"{name:<40} Δ bg {diff['background']:+.3f} fat {diff['fat']:+.3f} FGT {diff['fgt']:+.3f} "
          f"vessels {diff['vessels']:+.3f}  air SD x{air:.2f}  PSNR {np.mean(metrics.psnr(samples, real)):5.2f}  "
          f"SSIM {np.mean(metrics.ssim(samples, real)):.3f}  FD-VGG {frechet.fd_vgg(real, samples, batch_size=16):6.1f}",
          flush=True)

  def sample(params, plan, clip=True):
    return np.asarray(sampling.Sampler(model_fn, plan, clip_sample=clip).bind(params)(keys, cond).samples)

  def manual_ddim(params, plan, x, consistent_eps=False):
    """DDIM step by step from a given x_T; optionally ε̂ recomputed from the clipped x̂0."""
    outside = []
    for i, t in enumerate(plan.timesteps):
      out = apply(params, x, jnp.full((NUM_IMAGES,), t, jnp.int32))
      x0, eps = parameterization.to_x0_eps("eps", out, x, plan.alpha[i], plan.sigma[i])
      outside.append(float(jnp.mean(jnp.abs(x0) > 1)))
      x0 = jnp.clip(x0, -1, 1)
      if consistent_eps:
        eps = (x - plan.alpha[i] * x0) / plan.sigma[i]
      x = plan.x0_coef[i] * x0 + plan.eps_coef[i] * eps
    return np.clip(np.asarray(x), -1, 1), outside

  report(np.asarray(test["image"][np.random.default_rng(1).permutation(len(test["labels"]))[:NUM_IMAGES]]),
         "other real test slices (reference)")
  gap = {k: round(a - b, 3) for (k, a), b in zip(intensity.tissue_means(train["image"], train["labels"]).items(),
                                                 intensity.tissue_means(test["image"], test["labels"]).values())}
  print("tissue means, train split - test split:", gap)
  params, step = checkpoint.load_inference_params(workdir)
  ddim = sampling.ddim_plan(schedule, 50)
  report(sample(params, ddim), f"DDIM-50 (EMA, step {step})")
  report(sample(params, ddim, clip=False), "DDIM-50 without x0 clipping")
  report(sample(params, sampling.ddim_plan(schedule, 50, set_alpha_to_one=False)), "DDIM-50 set_alpha_to_one=False")
  report(sample(params, sampling.ddim_plan(schedule, 50, spacing="trailing")), "DDIM-50 trailing (t = 999 first)")
  report(sample(params, sampling.ddim_plan(schedule, 200)), "DDIM-200")
  samples, outside = manual_ddim(params, ddim, jnp.asarray(noise))
  report(samples, "DDIM-50, manual loop (same as above)")
  print("  share of x0_hat pixels outside [-1, 1] at steps 0, 5, 10, 20, 30, 40, 49:",
        [round(outside[k], 3) for k in (0, 5, 10, 20, 30, 40, 49)])
  report(manual_ddim(params, ddim, jnp.asarray(noise), consistent_eps=True)[0], "DDIM-50, eps from clipped x0")
  a = np.sqrt(schedule.alphas_cumprod[int(ddim.timesteps[0])])
  report(manual_ddim(params, ddim, jnp.asarray(a * real + np.sqrt(1 - a * a) * noise))[0],
         "DDIM-50 from x_T carrying the real signal")
  manager = ocp.CheckpointManager(os.path.abspath(os.path.join(workdir, checkpoint.DIFFUSION_SUBDIR)))
  for s in sorted(manager.all_steps()):
    state = manager.restore(s, args=ocp.args.Composite(state=ocp.args.StandardRestore()))["state"]
    report(sample(state["ema_params"], ddim), f"DDIM-50, EMA of step {s}")
    if s == max(manager.all_steps()):
      report(sample(state["params"], ddim), f"DDIM-50, raw weights of step {s}")


if __name__ == "__main__":
  main()
