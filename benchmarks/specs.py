"""Workload definitions: sizes come from configs/demo.py (64² model) and configs/default.py (paper,
256² model, prototype heads), so the benchmark measures what the study runs.

A spec is a JSON-able dict read by both workers: `kind` picks the builder, `images` is the number
of images one call processes (img/s = images / seconds), `inner` the timed calls per request,
`warmup` the untimed calls after setup (default 1), `rtol`/`atol` the equivalence tolerance
(`atol + rtol * max|reference|`, the reference always computed in float32), `reference_dtype` the
dtype the reference is timed in.

Precision (`--precision`): "fp32" times both sides in float32. "mixed" times the UNet workloads
(and the peak matmul) in low precision: ours with the library's `model.compute_dtype = "bfloat16"`
(params stay float32), the reference in float16 (`.half()` model and inputs; the training step
with `torch.autocast` float16 + `GradScaler`, as diffusers' training scripts do), i.e. "diffusers
fp16". Metrics and prototype workloads stay float32 in both modes.
"""

from configs import default, demo

NAMES = ("unet_fwd_64_b8", "unet_fwd_256_b1", "unet_fwd_256_b4", "train_step_64_b16", "ddim50_64_b8",
         "ddpm1000_32_b4", "lpips_256_b8", "ssim_256_b8", "proto_similarity", "push")
# Paper-size extras, run only when named with --only (minutes per call on a 2-core CPU; the GPU suite).
EXTRA_NAMES = ("train_step_256_b16", "ddim50_256_b4")
ALL_NAMES = NAMES + EXTRA_NAMES
PEAK = "matmul_2048"  # always measured: every GFLOP/s figure is also read as a fraction of it
PRECISIONS = ("fp32", "mixed")

# Equivalence tolerances, rtol relative to max|reference| (the reference's float32 output).
# fp32: float32 rounding through the network (measured errors: docs/PERFORMANCE.md).
# mixed: bfloat16 keeps 8 significant bits (unit roundoff u = 2^-8 = 3.9e-3). Measured on the CPU
# (`--precision mixed`, 2026-11-26): UNet forward 7e-3 (64² b8) and 1.8e-2 (256² b1, ~4.5 u) of
# max|ref|; DDIM-50 unclipped 1.6e-3; weight gradients 1.3e-3; peak matmul 3e-3. Tolerances ~2x
# above the largest: forward 4e-2 (~10 u), gradients and DDIM 2e-2 (~5 u), matmul 1e-2.
# (Bias gradients were 20-80% off in bf16 on XLA:CPU, a bf16 reduction stagnating; the train-step
# check reports that as a mismatch, see benchmarks/README.md.)
TOLERANCE = {
    "fp32": {"unet_forward": 1e-4, "train_step": 1e-3, "ddim": 1e-4, "ddpm": 1e-4, "matmul": 1e-4},
    "mixed": {"unet_forward": 4e-2, "train_step": 2e-2, "ddim": 2e-2, "ddpm": 2e-2, "matmul": 1e-2},
}

# --quick: the smallest model the UNet code accepts (two levels, attention at the lower one).
_TINY_MODEL = dict(block_out_channels=[32, 64], down_block_types=["DownBlock2D", "AttnDownBlock2D"],
                   up_block_types=["AttnUpBlock2D", "UpBlock2D"], layers_per_block=1)


def _plain(value):
  if isinstance(value, (tuple, list)):
    return [_plain(v) for v in value]
  return value


def _section(config_section, **overrides) -> dict:
  out = {k: _plain(v) for k, v in config_section.to_dict().items()}
  out.update(overrides)
  return out


def workloads(quick: bool = False, precision: str = "fp32") -> dict:
  """name -> spec for the peak matmul and every workload of ALL_NAMES (tiny sizes with `quick`)."""
  if precision not in PRECISIONS:
    raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
  low = precision == "mixed"
  paper, small = default.get_config(), demo.get_config()
  tiny = dict(_TINY_MODEL)
  compute = {"compute_dtype": "bfloat16"} if low else {}
  model_64 = _section(small.model, **(tiny if quick else {}), **compute)
  model_256 = _section(paper.model, **(tiny if quick else {}), **compute)
  diffusion = _section(paper.diffusion)
  sample = _section(paper.sample)
  train = _section(small.train, sample_every=0)  # no sample-grid action inside the timed step

  def unet(kind, model, size, batch, **extra):
    return dict(kind=kind, model=model, diffusion=diffusion, size=16 if quick else size,
                batch=min(batch, 2) if quick else batch, seed=0, **extra)

  heads = paper.heads
  num_protos = heads.prototypes_per_class * len(heads.tissue_classes)
  feature_hw = paper.data.image_size // {"conv3_3": 4, "conv4_3": 8, "conv5_3": 16}[heads.vgg_layer]
  proto = dict(cells=8 if quick else feature_hw, dim=16 if quick else heads.prototype_dim,
               prototypes=6 if quick else num_protos, classes=list(heads.tissue_classes), seed=0)

  specs = {
      PEAK: dict(kind="matmul", n=256 if quick else 2048, inner=10, warmup=3, images=None, seed=0,
                 dtype="bfloat16" if low else "float32"),
      "unet_fwd_64_b8": unet("unet_forward", model_64, 64, 8, inner=5, warmup=2),
      "unet_fwd_256_b1": unet("unet_forward", model_256, 256, 1, inner=1),
      "unet_fwd_256_b4": unet("unet_forward", model_256, 256, 4, inner=1),
      "train_step_64_b16": unet("train_step", model_64, 64, 16, inner=3, warmup=3, train=train),
      "ddim50_64_b8": unet("ddim", model_64, 64, 8, inner=1, steps=3 if quick else 50, sample=sample),
      "train_step_256_b16": unet("train_step", model_256, 256, 16, inner=3, warmup=3,
                                 train=_section(paper.train, sample_every=0)),
      "ddim50_256_b4": unet("ddim", model_256, 256, 4, inner=1, steps=3 if quick else 50, sample=sample),
      "ddpm1000_32_b4": unet("ddpm", model_64, 32, 4, inner=1, sample=sample),
      "lpips_256_b8": dict(kind="lpips", size=32 if quick else 256, batch=2 if quick else 8, inner=1, seed=0),
      "ssim_256_b8": dict(kind="ssim", size=32 if quick else 256, batch=2 if quick else 8, inner=5, seed=0),
      "proto_similarity": dict(kind="proto_similarity", batch=2 if quick else heads.train.batch_size,
                               inner=10, warmup=3, **proto),
      "push": dict(kind="push", images=8 if quick else 256, batch=4 if quick else heads.train.batch_size,
                   inner=1, **proto),
  }
  if quick:  # DDPM over a 10-step schedule instead of 1000
    specs["ddpm1000_32_b4"]["diffusion"] = dict(diffusion, num_timesteps=10)
  for spec in specs.values():
    spec.setdefault("images", spec.get("batch"))
    if spec["kind"] in TOLERANCE[precision]:
      spec.update(rtol=TOLERANCE[precision][spec["kind"]], reference_dtype="float16" if low else "float32")
    else:  # metrics and prototypes: float32 on both sides in both modes, tolerances in ours.py
      spec.update(reference_dtype="float32")
  return specs
