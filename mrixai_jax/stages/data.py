"""Stage "data": builds (or finds) the TFDS dataset of `config.data` under the workdir."""

import sys

from mrixai_jax.data import pipeline

SPLITS = ("train", "test")


def run(config, workdir: str) -> dict:
  """Loads every split once (building the dataset if needed); `{split: number of slices}`."""
  summary = {split: len(pipeline.load_split(config.data, split, workdir)["image"]) for split in SPLITS}
  for split, num in summary.items():
    print(f"study: data: {split} split has {num} slices", file=sys.stderr, flush=True)
  return summary
