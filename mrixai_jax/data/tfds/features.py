"""The features every slice dataset yields, and the split the builders write."""

import numpy as np
import tensorflow_datasets as tfds

KEYS = ("image", "labels", "patient_id", "slice_index")
SPLIT = "full"  # builders write one split; `pipeline.load_split` assigns patients to train/val/test


def slice_features(size: int) -> tfds.features.FeaturesDict:
  """``image [S,S,1] float32`` in [-1, 1], ``labels [S,S] uint8``, ``patient_id`` str,
  ``slice_index`` int32."""
  return tfds.features.FeaturesDict({
      "image": tfds.features.Tensor(shape=(size, size, 1), dtype=np.float32),
      "labels": tfds.features.Tensor(shape=(size, size), dtype=np.uint8),
      "patient_id": tfds.features.Text(),
      "slice_index": tfds.features.Scalar(dtype=np.int32),
  })
