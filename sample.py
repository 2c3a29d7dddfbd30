"""Sample images (with denoising trajectories) from the latest EMA checkpoint in --workdir.

Usage:
  python sample.py [--config=configs/demo.py] --workdir=DIR [--num_samples=N] [--sampler=ddim|ddpm|dpmpp2m|dpmpp2m_sde]
      [--steps=S] [--seed=K] [--masks=FOLDER] [--eta=E] [--guidance_scale=W] [--batch_size=B] [--dicom]
      [--config.sample.KEY=value ...]

The short flags set `config.sample.*` before the config is validated and compared with the one
recorded in DIR (so a rerun with other sampling flags is refused unless --overwrite, which first
deletes the old samples); outputs go to DIR/samples/ (see mrixai_jax.generate).
"""

import logging
import os

from absl import flags

from mrixai_jax import cli
from mrixai_jax import config_validation
from mrixai_jax import generate
from mrixai_jax.diffusion import names

_CONFIG, _WORKDIR = cli.define_config_and_workdir_flags()
_NUM_SAMPLES = flags.DEFINE_integer("num_samples", None, "Images to generate (sample.num_samples).")
_SAMPLER = flags.DEFINE_enum("sampler", None, list(names.SAMPLERS), "Sampler (sample.sampler).")
_STEPS = flags.DEFINE_integer("steps", None, "DDIM / DPM-Solver++ steps (sample.num_steps); DDPM always runs all T steps.")
_SEED = flags.DEFINE_integer("seed", None, "Sampling seed (sample.seed).")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", None, "Images per sampler call, split over devices (sample.batch_size).")
_ETA = flags.DEFINE_float("eta", None, "DDIM η: 0 deterministic, 1 DDPM-like noise (sample.eta).")
_GUIDANCE = flags.DEFINE_float("guidance_scale", None, "Classifier-free guidance w; 1 = conditional only.")
_MASKS = flags.DEFINE_string("masks", None, "Folder of PNG/NPY label maps (sample.masks; default: the "
                             "sample.split masks).")
_DICOM = flags.DEFINE_bool("dicom", None, "Also write DICOM Secondary Capture files (sample.write_dicom).")


def apply_flags(config) -> None:
  """Sets this script's short flags in `config.sample` (in place; run by `cli.run` before any check)."""
  generate.apply_overrides(
      config, num_samples=_NUM_SAMPLES.value, sampler=_SAMPLER.value, steps=_STEPS.value, seed=_SEED.value,
      batch_size=_BATCH_SIZE.value, eta=_ETA.value, guidance_scale=_GUIDANCE.value, write_dicom=_DICOM.value,
      masks=os.path.abspath(_MASKS.value) if _MASKS.value else None)


def main(argv):
  del argv
  logging.getLogger("absl").setLevel(logging.WARNING)  # Orbax logs every restore detail at INFO
  summary = generate.run(_CONFIG.value, _WORKDIR.value)
  print(f"sample: wrote {summary['num_samples']} images to {summary['out_dir']} "
        f"({summary['images_per_second']:.2f} img/s)")


if __name__ == "__main__":
  cli.run(main, validate=config_validation.validate, prepare=apply_flags, host_devices=True)
