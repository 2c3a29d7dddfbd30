"""Conditioning channels: the label map as one-hot channels of labels 1..K (not k/255 as in the peer)."""

import jax.numpy as jnp

NUM_CONDITION_CLASSES = 3  # labels 1 fat, 2 FGT, 3 vessels; 0 (background) is all-zero


def one_hot_labels(labels, num_classes: int = NUM_CONDITION_CLASSES):
  """`labels: [B, H, W]` integer label map -> `[B, H, W, num_classes]` float32 one-hot of 1..num_classes."""
  classes = jnp.arange(1, num_classes + 1, dtype=jnp.int32)
  return (labels.astype(jnp.int32)[..., None] == classes).astype(jnp.float32)
