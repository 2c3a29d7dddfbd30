"""Training loop on a tiny UNet: overfit, interrupt-and-resume, sharded vs single-device step, NaN guard."""

import re
import shutil

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import demo
from mrixai_jax import sharding
from mrixai_jax import workdir
from mrixai_jax.diffusion import losses
from mrixai_jax.diffusion.conditioning import one_hot_labels
from mrixai_jax.models import unet
from mrixai_jax.training import checkpoint, diffusion_task, loop
from mrixai_jax.training import state as state_lib

SIZE = 16


def _config(**train):
  c = demo.get_config()
  m = c.model
  m.block_out_channels = (16,)  # one level: resnet, mid block (resnet, attention, resnet), 2 up resnets
  m.down_block_types = ("DownBlock2D",)
  m.up_block_types = ("UpBlock2D",)
  m.layers_per_block = 1
  m.norm_num_groups = 8
  c.train.update(dict(batch_size=4, num_steps=6, learning_rate=2e-3, lr_schedule="cosine", warmup_steps=2,
                      ema_decay=0.9, checkpoint_every=1000, log_every=1000, sample_every=0, keep_checkpoints=2))
  c.train.update(train)
  return c


def _data(num: int, seed: int = 0) -> dict:
  """Blobby label maps and images that depend on them (enough structure for the UNet to fit)."""
  rng = np.random.default_rng(seed)
  yy, xx = np.mgrid[:SIZE, :SIZE]
  labels = np.zeros((num, SIZE, SIZE), np.uint8)
  for i in range(num):
    cy, cx = rng.uniform(4, 12, 2)
    r = np.hypot(yy - cy, xx - cx)
    labels[i] = np.select([r < 2, r < 4, r < 7], [3, 2, 1], 0)
  image = np.choose(labels, [-1.0, 0.6, -0.2, 0.9]).astype(np.float32)[..., None]
  return {"image": image + 0.05 * rng.standard_normal(image.shape).astype(np.float32), "labels": labels}


def _params_equal(a, b, atol=0.0):
  for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), atol=atol, rtol=0)


def test_overfits_fixed_tiny_batch(tmp_path):
  config = _config(num_steps=150, batch_size=4, learning_rate=3e-3, warmup_steps=20, lr_schedule="constant")
  data = _data(4)
  task = diffusion_task.build(config, str(tmp_path), data=data)
  model, schedule = unet.build_model(config), diffusion_task.schedule_lib.from_config(config.diffusion)

  @jax.jit
  def eval_loss(params):  # the unweighted MSE of the config's target over 16 fixed (t, noise) draws per image
    def predict(x_t, t, cond, drop, key):
      return model.apply({"params": params}, x_t, t, cond)
    def one(key):
      return losses.denoising_mse(predict, schedule, data["image"], one_hot_labels(data["labels"]), key,
                                  prediction=config.diffusion.prediction)[1]["mse"]
    return jnp.mean(jax.lax.map(one, jax.random.split(jax.random.PRNGKey(123), 16)))

  start = float(eval_loss(task.init_params(jax.random.split(jax.random.PRNGKey(config.train.seed))[0])))
  final = float(eval_loss(jax.device_get(loop.run(task, str(tmp_path)).params)))
  print(f"overfit: eval loss {start:.4f} -> {final:.4f}")
  assert final < 0.25 * start


def test_interrupt_and_resume_matches_uninterrupted_run(tmp_path):
  # 12 examples / batch 4: the resumed half crosses an epoch boundary; dropout and CFG dropout use the RNG.
  config = _config(num_steps=6, checkpoint_every=3)
  config.model.dropout = 0.1
  config.diffusion.p_uncond = 0.3
  config.diffusion.null_mask = "learned"
  data = _data(12)
  straight_dir, resumed_dir = tmp_path / "straight", tmp_path / "resumed"
  straight = loop.run(diffusion_task.build(config, str(straight_dir), data=data), str(straight_dir))
  # A run killed right after its step-3 checkpoint leaves exactly that checkpoint behind.
  shutil.copytree(straight_dir / "checkpoints" / "3", resumed_dir / "checkpoints" / "3")
  resumed = loop.run(diffusion_task.build(config, str(resumed_dir), data=data), str(resumed_dir))
  assert int(resumed.step) == 6
  _params_equal(resumed, straight)  # every leaf: params, EMA, optimizer state, step, RNG key (bitwise)
  ema, step = checkpoint.load_inference_params(str(resumed_dir))
  assert step == 6
  _params_equal(ema, straight.ema_params)


def _without_key_biases(params) -> dict:
  """Drops attention `to_k` biases: softmax over keys is shift-invariant, so their exact gradient is 0 and Adam
  turns float round-off (which differs with the reduction order) into +-lr steps; every other leaf is compared."""
  flat = flax.traverse_util.flatten_dict(params)
  return {k: v for k, v in flat.items() if k[-2:] != ("to_k", "bias")}


def test_sharded_step_equals_single_device_step():
  assert jax.device_count() == 4, "conftest forces 4 host devices"
  config = _config(batch_size=8)
  task = diffusion_task.build(config, "/unused", data=_data(8))
  phases = loop.default_phases(config.train, 6)
  batch = {k: jnp.asarray(v) for k, v in _data(8, seed=1).items()}
  finals, metrics = [], []
  for devices in (jax.devices(), jax.devices()[:1]):
    mesh = sharding.make_mesh(devices)
    state = loop.init_state(task, phases, mesh)
    step = loop.make_train_step(task, phases[0], mesh)
    placed = jax.device_put(batch, sharding.batch_sharding(mesh))
    for _ in range(3):
      state, m = step(state, placed)
      metrics.append(jax.device_get(m))
    assert len(placed["image"].sharding.device_set) == len(devices)
    assert len(state.params["conv_in"]["kernel"].sharding.device_set) == len(devices)
    finals.append(jax.device_get(state))
  for sharded, single in zip(metrics[:3], metrics[3:]):
    np.testing.assert_allclose([sharded["loss"], sharded["grad_norm"]], [single["loss"], single["grad_norm"]], rtol=1e-5)
  for tree in ("params", "ema_params"):
    a, b = (_without_key_biases(getattr(f, tree)) for f in finals)
    assert a.keys() == b.keys() and len(a) > 50
    for k in a:
      np.testing.assert_allclose(a[k], b[k], atol=1e-5, rtol=0, err_msg="/".join(k))


def test_nan_guard_stops_and_keeps_last_good_checkpoint(tmp_path):
  # Constant lr 1e12 without clipping: the parameters explode after the first update.
  config = _config(num_steps=10, learning_rate=1e12, warmup_steps=0, lr_schedule="constant", grad_clip_norm=0.0,
                   checkpoint_every=1)
  task = diffusion_task.build(config, str(tmp_path), data=_data(8))
  with pytest.raises(loop.NonFiniteError, match=r"at step (\d+).*Last good checkpoint: step") as info:
    loop.run(task, str(tmp_path))
  print(info.value)
  bad_step = int(re.search(r"at step (\d+)", str(info.value)).group(1))
  ema, step = checkpoint.load_inference_params(str(tmp_path))
  assert step == bad_step - 1
  assert all(np.all(np.isfinite(np.asarray(x))) for x in jax.tree_util.tree_leaves(ema))


def test_learning_rate_schedule_warmup_and_cosine():
  t = _config(learning_rate=1e-3, warmup_steps=10, lr_schedule="cosine").train
  lr = state_lib.learning_rate_schedule(t, 110)
  np.testing.assert_allclose([lr(0), lr(5), lr(10), lr(60), lr(110)],
                             [0.0, 5e-4, 1e-3, 1e-3 * 0.5 * (1 + np.cos(np.pi * 0.5)), 0.0], atol=1e-9)


def test_restore_into_a_different_model_names_the_checkpoint(tmp_path):
  saver = checkpoint.Checkpointer(str(tmp_path), keep=1)
  saver.save(1, {"w": jnp.zeros(3)}, {"epoch": 0, "batch": 1})
  with pytest.raises(checkpoint.CheckpointError, match=r"no readable checkpoint in .* \(tried steps \[1\]\).*config"):
    saver.restore_latest({"w": jnp.zeros(4)})
  saver.close()
  assert (tmp_path / "1").is_dir()  # a config mismatch is not corruption: nothing is set aside


def test_load_inference_params_without_checkpoint_is_a_clear_error(tmp_path):
  with pytest.raises(FileNotFoundError, match="no checkpoint directory"):
    checkpoint.load_inference_params(str(tmp_path))


def test_bad_data_shapes_are_rejected():
  data = _data(4)
  with pytest.raises(ValueError, match=r"need image \[N,S,S,1\] and labels \[N,S,S\]"):
    diffusion_task.build(_config(), "/unused", data={"image": data["image"], "labels": data["labels"][:, :8]})


def test_sample_grid_action_writes_a_png_every_m_steps(tmp_path):
  from PIL import Image  # pylint: disable=g-import-not-at-top

  config = _config(num_steps=4, sample_every=2, sample_grid_size=3, sample_grid_steps=3)
  loop.run(diffusion_task.build(config, str(tmp_path), data=_data(8)), str(tmp_path))
  grids = sorted(p.name for p in (tmp_path / workdir.TRAIN_SAMPLES_SUBDIR).iterdir())
  assert grids == ["step_0000002.png", "step_0000004.png"]
  with Image.open(tmp_path / workdir.TRAIN_SAMPLES_SUBDIR / grids[-1]) as image:
    assert image.format == "PNG" and image.size[1] > image.size[0]  # 3 rows (sample | mask | real)


def test_ema_warmup_follows_diffusers_emamodel():
  steps = np.array([0, 1, 10, 1000, 10**6])
  expected = np.minimum(0.999, (1 + steps) / (10 + steps))  # diffusers EMAModel.get_decay, no inv_gamma/power
  np.testing.assert_allclose(state_lib.ema_decay(jnp.asarray(steps, jnp.float32), 0.999), expected, rtol=1e-6)
  new = state_lib.ema_update({"w": jnp.zeros(2)}, {"w": jnp.ones(2)}, 0.25)
  np.testing.assert_allclose(new["w"], [0.75, 0.75])
