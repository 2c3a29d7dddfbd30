"""A one-parameter `loop.Task` (no model, compiles in a second) for tests of the training loop's machinery."""

import jax
import jax.numpy as jnp
import numpy as np

from configs import demo
from mrixai_jax.training import loop


def build(loss_fn, **train) -> loop.Task:
  """Fits `w` [1] on 8 scalars `x` [8, 1] with `loss_fn(params, batch, key, step)`; `train` overrides demo's train keys."""
  c = demo.get_config().train
  c.update(dict(batch_size=4, num_steps=4, warmup_steps=0, checkpoint_every=1, log_every=100, keep_checkpoints=2))
  c.update(train)
  return loop.Task(name="tiny", train_config=c, data={"x": np.arange(8, dtype=np.float32)[:, None]},
                   init_params=lambda key: {"w": jax.random.normal(key, (1,))}, loss_fn=loss_fn)


def quadratic(params, batch, key, step):
  del key, step
  return jnp.mean((batch["x"] * params["w"] - 1.0) ** 2), {}
