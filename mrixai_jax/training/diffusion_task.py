"""The diffusion task for the training loop: mask-conditioned UNet, ε-MSE loss, sample-grid action."""

import os

import jax
import jax.numpy as jnp
import numpy as np

from mrixai_jax import workdir as workdir_lib
from mrixai_jax.diffusion import losses, parameterization, sampling
from mrixai_jax.diffusion import schedule as schedule_lib
from mrixai_jax.diffusion.conditioning import one_hot_labels
from mrixai_jax.models import unet as unet_lib
from mrixai_jax.training import loop


def _grid_rows(num_examples: int, count: int) -> np.ndarray:
  """`count` evenly spaced row indices (fixed masks for every grid of a run)."""
  return np.linspace(0, num_examples - 1, min(count, num_examples)).round().astype(np.int64)


def make_grid_action(config, workdir: str, model: unet_lib.UNet, schedule, data: dict) -> loop.Action:
  """Every `train.sample_every` steps: DDIM (`train.sample_grid_steps` steps, η = 0, x̂0 clipping and
  timestep spacing as in `config.sample`) from the EMA params on `train.sample_grid_size` fixed training masks ->
  `WORKDIR/train_samples/step_<step>.png` (rows: sample | mask | real image)."""
  train = config.train
  rows = _grid_rows(len(data["labels"]), int(train.sample_grid_size))
  labels, real = np.asarray(data["labels"][rows]), np.asarray(data["image"][rows])
  cond = one_hot_labels(jnp.asarray(labels))
  keys = sampling.image_keys(jax.random.PRNGKey(train.seed), 0, len(rows))
  plan = sampling.ddim_plan(schedule, int(train.sample_grid_steps), spacing=config.sample.timestep_spacing)
  sampler = sampling.Sampler(unet_lib.model_fn(model), plan, prediction=config.diffusion.prediction,
                             image_channels=real.shape[-1], clip_sample=config.sample.clip_sample,
                             clip_range=config.sample.clip_range)

  def write(step: int, state) -> None:
    params = jax.device_get(state.ema_params)
    samples = np.asarray(sampler(params, keys, cond, unet_lib.null_cond(params)).samples)
    if jax.process_index() == 0:
      from mrixai_jax.report import figures  # pylint: disable=g-import-not-at-top
      figures.sample_grid(os.path.join(workdir, workdir_lib.TRAIN_SAMPLES_SUBDIR, f"step_{step:07d}.png"), samples, labels, real)

  return loop.Action(int(train.sample_every), write)


def build(config, workdir: str, data=None) -> loop.Task:
  """Diffusion `Task` from the whole config. `data`: dict with `image [N,S,S,1]` float32 in [-1,1] and
  `labels [N,S,S]` uint8; default: the train split of `config.data` (built under `workdir` if needed)."""
  if data is None:
    from mrixai_jax.data import pipeline
    data = pipeline.load_split(config.data, "train", workdir)
  data = {"image": np.asarray(data["image"], np.float32), "labels": np.asarray(data["labels"], np.uint8)}
  image, labels = data["image"].shape, data["labels"].shape
  if len(image) != 4 or image[-1] != 1 or labels != image[:3]:
    raise ValueError(f"diffusion data: need image [N,S,S,1] and labels [N,S,S], got {image} and {labels}")
  model = unet_lib.build_model(config)
  schedule = schedule_lib.from_config(config.diffusion)
  diffusion_cfg = config.diffusion
  weights = None if diffusion_cfg.loss_weighting == "uniform" else parameterization.loss_weights(
      diffusion_cfg.prediction, diffusion_cfg.loss_weighting, schedule.alphas_cumprod,
      float(diffusion_cfg.min_snr_gamma))
  loss_options = {"p_uncond": float(diffusion_cfg.p_uncond), "prediction": diffusion_cfg.prediction,
                  "weights": weights}
  size = data["image"].shape[1:3]

  def init_params(key):
    x = jnp.zeros((1, *size, data["image"].shape[-1]), jnp.float32)
    cond = jnp.zeros((1, *size, model.in_channels - x.shape[-1]), jnp.float32)
    return model.init(key, x, jnp.zeros((1,), jnp.int32), cond)["params"]

  def loss_fn(params, batch, key, step):
    del step  # the diffusion loss draws its timesteps from `key`
    def predict(x_t, t, cond, drop, dropout_key):
      return model.apply({"params": params}, x_t, t, cond, train=True, drop_cond=drop, rngs={"dropout": dropout_key})
    return losses.denoising_mse(predict, schedule, batch["image"], one_hot_labels(batch["labels"]), key,
                                **loss_options)

  actions = (make_grid_action(config, workdir, model, schedule, data),) if config.train.sample_every > 0 else ()
  return loop.Task(name="diffusion", train_config=config.train, data=data, init_params=init_params,
                   loss_fn=loss_fn, actions=actions, prefetch=int(config.data.get("prefetch", 2)))
