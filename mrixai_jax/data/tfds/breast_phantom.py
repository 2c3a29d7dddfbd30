"""TFDS builder ``breast_phantom``: slices of `mrixai_jax.data.phantom` (array_record files).

Every knob lives in the builder config, whose name encodes it, so datasets of different sizes,
counts or seeds sit side by side in one data dir.
"""

import dataclasses

import tensorflow_datasets as tfds

from mrixai_jax.data import phantom
from mrixai_jax.data.tfds import features

GENERATE_CHUNK = 256  # slices generated per call (bounds memory)


@dataclasses.dataclass
class BreastPhantomConfig(tfds.core.BuilderConfig):
  image_size: int = 64
  num_slices: int = 600
  seed: int = 0
  slices_per_patient: int = phantom.SLICES_PER_PATIENT


def make_config(image_size: int, num_slices: int, seed: int,
                slices_per_patient: int) -> BreastPhantomConfig:
  name = f"s{image_size}_n{num_slices}_seed{seed}_spp{slices_per_patient}"
  return BreastPhantomConfig(name=name, image_size=image_size, num_slices=num_slices, seed=seed,
                             slices_per_patient=slices_per_patient)


class BreastPhantom(tfds.core.GeneratorBasedBuilder):
  """Procedural axial T1-weighted breast MRI slices with fat / FGT / vessel label maps."""

  VERSION = tfds.core.Version("1.0.0")
  # Only for `tfds.builder("breast_phantom")`; `make_config` names never collide with it.
  BUILDER_CONFIGS = [BreastPhantomConfig(name="default")]

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self, description=phantom.__doc__.splitlines()[0],
        features=features.slice_features(self.builder_config.image_size))

  def _split_generators(self, dl_manager):
    del dl_manager  # nothing to download
    return {features.SPLIT: self._generate_examples()}

  def _generate_examples(self):
    cfg = self.builder_config
    for start in range(0, cfg.num_slices, GENERATE_CHUNK):
      count = min(GENERATE_CHUNK, cfg.num_slices - start)
      data = phantom.generate(count, cfg.image_size, cfg.seed, cfg.slices_per_patient, start=start)
      for i in range(count):
        yield start + i, {key: data[key][i] for key in features.KEYS}
