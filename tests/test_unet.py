"""UNet: shapes, the paper config's parameter count, and equivalence with diffusers' UNet2DModel."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import default
from mrixai_jax.diffusion.conditioning import one_hot_labels
from mrixai_jax.models import diffusers_port, layers
from mrixai_jax.models.unet import UNet

TINY = dict(in_channels=4, out_channels=1, block_out_channels=(16, 32), down_block_types=("DownBlock2D", "AttnDownBlock2D"),
            up_block_types=("AttnUpBlock2D", "UpBlock2D"), layers_per_block=1, attention_head_dim=8,
            norm_num_groups=8, norm_eps=1e-5)
PEER_PARAMS_2_TO_1 = 113_669_761  # SegGuidedDiff's UNet2DModel (in 2 -> out 1), data_and_peer.md §B.1


def _inputs(rng, batch, size):
  x = rng.standard_normal((batch, size, size, 1)).astype(np.float32)
  cond = np.asarray(one_hot_labels(rng.integers(0, 4, (batch, size, size))))
  t = rng.integers(0, 1000, (batch,)).astype(np.int32)
  return x, t, cond


def _init(model, *inputs):
  """`model.init` compiled without LLVM optimisation (init runs once; its many RNG kernels compile slowly)."""
  key = jax.random.PRNGKey(0)
  return jax.jit(model.init).lower(key, *inputs).compile({"xla_backend_optimization_level": 0})(key, *inputs)


def _count(tree) -> int:
  return int(sum(np.prod(leaf.shape) for leaf in jax.tree_util.tree_leaves(tree)))


def _paper_param_count(in_channels: int) -> int:
  cfg = default.get_config().model
  with cfg.unlocked():
    cfg.in_channels = in_channels
  x, t, cond = jnp.zeros((1, 256, 256, 1)), jnp.zeros((1,), jnp.int32), jnp.zeros((1, 256, 256, in_channels - 1))
  return _count(jax.eval_shape(UNet.from_config(cfg).init, jax.random.PRNGKey(0), x, t, cond))


@pytest.mark.parametrize("compute_dtype", [jnp.float32, jnp.bfloat16])
def test_output_shape_and_dtype(compute_dtype):
  x, t, cond = _inputs(np.random.default_rng(0), 3, 16)
  model = UNet(**TINY, dtype=compute_dtype, dropout=0.1)
  variables = _init(model, x, t, cond)
  assert all(leaf.dtype == jnp.float32 for leaf in jax.tree_util.tree_leaves(variables))
  apply = jax.jit(lambda v, key: model.apply(v, x, t, cond, train=True, rngs={"dropout": key}))
  eps = apply(variables, jax.random.PRNGKey(1))
  assert eps.shape == (3, 16, 16, 1) and eps.dtype == jnp.float32
  assert bool(jnp.all(jnp.isfinite(eps)))


def test_paper_config_parameter_count():
  """Peer layout 2->1 gives the peer's published count; our 4 input channels add 2 * 3*3*128 conv_in weights."""
  ours, peer_layout = _paper_param_count(4), _paper_param_count(2)
  print(f"paper UNet parameters: {ours:,} (in_channels=4); {peer_layout:,} with the peer's in_channels=2")
  assert peer_layout == PEER_PARAMS_2_TO_1
  assert ours == PEER_PARAMS_2_TO_1 + 2 * 3 * 3 * 128


def test_paper_config_parameter_count_matches_diffusers():
  torch = pytest.importorskip("torch")
  diffusers = pytest.importorskip("diffusers")
  m = default.get_config().model
  with torch.device("meta"):
    ref = diffusers.UNet2DModel(
        sample_size=256, in_channels=m.in_channels, out_channels=m.out_channels, layers_per_block=m.layers_per_block,
        block_out_channels=tuple(m.block_out_channels), down_block_types=tuple(m.down_block_types),
        up_block_types=tuple(m.up_block_types), attention_head_dim=m.attention_head_dim)
  assert _paper_param_count(m.in_channels) == sum(p.numel() for p in ref.parameters())


def test_remat_traces_forward_and_backward():
  x, t, cond = _inputs(np.random.default_rng(5), 2, 16)
  model = UNet(**TINY, remat=True, dropout=0.1)
  variables = jax.eval_shape(model.init, jax.random.PRNGKey(0), x, t, cond)

  def loss(v):
    return jnp.mean(model.apply(v, x, t, cond, train=True, rngs={"dropout": jax.random.PRNGKey(1)}) ** 2)

  grads = jax.eval_shape(jax.grad(loss), variables)
  assert jax.tree_util.tree_structure(grads) == jax.tree_util.tree_structure(variables)


def test_drop_cond_replaces_mask_by_null():
  x, t, cond = _inputs(np.random.default_rng(1), 2, 16)
  model = UNet(**TINY)
  variables = _init(model, x, t, cond)
  apply = jax.jit(model.apply)
  dropped = apply(variables, x, t, cond, drop_cond=jnp.array([True, False]))
  zero_first = np.concatenate([np.zeros_like(cond[:1]), cond[1:]])
  np.testing.assert_allclose(dropped, apply(variables, x, t, zero_first, drop_cond=jnp.array([False, False])), atol=1e-6)
  assert np.abs(dropped[0] - apply(variables, x, t, cond, drop_cond=jnp.array([False, False]))[0]).max() > 1e-3
  learned = UNet(**TINY, learned_null_cond=True)
  assert jax.eval_shape(learned.init, jax.random.PRNGKey(0), x, t, cond)["params"]["null_cond"].shape == (3,)


def test_bad_input_channels_raise_clear_error():
  x, t, cond = _inputs(np.random.default_rng(2), 1, 16)
  with pytest.raises(ValueError, match="in_channels"):
    jax.eval_shape(UNet(**TINY).init, jax.random.PRNGKey(0), x, t, cond[..., :2])


def test_matches_diffusers_unet2dmodel():
  torch = pytest.importorskip("torch")
  diffusers = pytest.importorskip("diffusers")
  torch.manual_seed(0)
  ref = diffusers.UNet2DModel(sample_size=16, **TINY).eval()
  with torch.no_grad():  # move every weight off its init (norm scales 1, biases 0) so each one matters
    for p in ref.parameters():
      p.add_(0.05 * torch.randn_like(p))
  state = {k: v.numpy() for k, v in ref.state_dict().items()}
  model = UNet(**TINY)
  x, t, cond = _inputs(np.random.default_rng(3), 2, 16)
  params = diffusers_port.state_dict_to_params(state, jax.eval_shape(model.init, jax.random.PRNGKey(0), x, t, cond)["params"])
  ours = np.asarray(jax.jit(model.apply)({"params": params}, x, t, cond))
  with torch.no_grad():
    theirs = ref(torch.from_numpy(np.concatenate([x, cond], -1).transpose(0, 3, 1, 2)), torch.from_numpy(t)).sample
  theirs = theirs.numpy().transpose(0, 2, 3, 1)
  assert np.abs(theirs).max() > 0.1
  print(f"max |ours - diffusers| = {np.abs(ours - theirs).max():.2e} (outputs up to {np.abs(theirs).max():.2f})")
  np.testing.assert_allclose(ours, theirs, atol=1e-4, rtol=0)


def test_parameter_gradients_match_torch_autograd():
  """Backward pass (custom SiLU derivative included) vs torch autograd through diffusers, same
  weights: gradient of sum(eps * w) w.r.t. every parameter, to 1e-4 of the largest gradient."""
  torch = pytest.importorskip("torch")
  diffusers = pytest.importorskip("diffusers")
  torch.manual_seed(1)
  ref = diffusers.UNet2DModel(sample_size=16, **TINY)
  with torch.no_grad():
    for p in ref.parameters():
      p.add_(0.05 * torch.randn_like(p))
  rng = np.random.default_rng(5)
  x, t, cond = _inputs(rng, 2, 16)
  w = rng.standard_normal(x.shape).astype(np.float32)
  out = ref(torch.from_numpy(np.concatenate([x, cond], -1).transpose(0, 3, 1, 2)), torch.from_numpy(t)).sample
  (out * torch.from_numpy(w.transpose(0, 3, 1, 2))).sum().backward()
  model = UNet(**TINY)
  template = jax.eval_shape(model.init, jax.random.PRNGKey(0), x, t, cond)["params"]
  params = diffusers_port.state_dict_to_params({k: v.detach().numpy() for k, v in ref.state_dict().items()}, template)
  theirs = diffusers_port.state_dict_to_params({k: p.grad.numpy() for k, p in ref.named_parameters()}, template)
  ours = jax.jit(jax.grad(lambda p: jnp.sum(model.apply({"params": p}, x, t, cond) * w)))(params)
  ours, theirs = jax.tree_util.tree_leaves(ours), jax.tree_util.tree_leaves(theirs)
  scale = max(float(np.abs(g).max()) for g in theirs)
  worst = max(float(np.abs(np.asarray(a) - b).max()) for a, b in zip(ours, theirs))
  print(f"max |grad ours - grad torch| = {worst:.2e} (largest gradient {scale:.2f})")
  assert scale > 0.1 and worst <= 1e-4 * scale


def test_bfloat16_gradients_follow_float32():
  """bfloat16 compute keeps every parameter's gradient within 10% (of that leaf's largest entry)
  of the float32 gradient: sums over B·H·W (bias, time-embedding projection) accumulate in float32.
  Summed in bfloat16 they came out up to 25% off at this size. Leaves with a zero float32 gradient
  (key biases: softmax ignores them) are left out."""
  rng = np.random.default_rng(7)
  x, t, cond = _inputs(rng, 8, 32)
  w = rng.standard_normal(x.shape).astype(np.float32)
  f32, bf16 = UNet(**TINY), UNet(**TINY, dtype=jnp.bfloat16)
  params = _init(f32, x, t, cond)["params"]
  params = jax.tree_util.tree_map(lambda p: p + 0.05 * jax.random.normal(jax.random.PRNGKey(1), p.shape), params)
  grads = lambda m: jax.tree_util.tree_leaves(
      jax.jit(jax.grad(lambda p: jnp.mean(m.apply({"params": p}, x, t, cond) * w)))(params))
  exact, low = grads(f32), grads(bf16)
  scale = max(float(np.abs(g).max()) for g in exact)
  errors = [float(np.abs(np.asarray(a) - np.asarray(b)).max() / np.abs(a).max())
            for a, b in zip(exact, low) if np.abs(a).max() > 1e-3 * scale]
  print(f"worst per-leaf relative gradient error, bfloat16 vs float32: {max(errors):.3f} over {len(errors)} leaves")
  assert len(errors) > 0.8 * len(exact) and max(errors) < 0.1


def test_silu_value_and_derivative_match_closed_form():
  x = np.random.default_rng(6).normal(0.0, 4.0, 1000).astype(np.float32)
  s = 1.0 / (1.0 + np.exp(-x.astype(np.float64)))
  value, grad = jax.vmap(jax.value_and_grad(layers.silu))(jnp.asarray(x))
  np.testing.assert_allclose(value, x * s, rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(grad, s + x * s * (1 - s), rtol=1e-5, atol=1e-6)


def test_port_rejects_mismatched_state_dict():
  model = UNet(**TINY)
  x, t, cond = _inputs(np.random.default_rng(4), 1, 16)
  template = jax.eval_shape(model.init, jax.random.PRNGKey(0), x, t, cond)["params"]
  state = {"conv_in.weight": np.zeros((16, 3, 3, 3), np.float32)}
  with pytest.raises(ValueError, match="conv_in.weight: shape"):
    diffusers_port.state_dict_to_params(state, template)
