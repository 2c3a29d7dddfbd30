"""Reference side: the peers our code is measured against, as their users run them.

- UNet, training step, DDIM/DDPM: diffusers `UNet2DModel` (eager PyTorch, NCHW, float32) with
  `DDIMScheduler` / `DDPMScheduler` loops and `torch.optim.AdamW`; weights from the diffusers
  default initialisation (seeded), exported for our side to load through the diffusers-layout port.
- LPIPS: the official `lpips` package (v0.1 linear layers from its own weight file), with the same
  ImageNet VGG16 trunk weights our metric uses. Where torchvision is not installed (it has no
  build for the CPU torch wheel used here), a stand-in declares torchvision's `vgg16().features`
  layer list so the official code runs unmodified.
- SSIM: scikit-image `structural_similarity`, one call per image.
- Prototype similarity and push: numpy (OpenBLAS) kernels.
- Peak: `torch.mm`.
Each class: `setup(path_in, path_out)` reads our inputs, writes its outputs (and weights),
returns FLOPs (torch FlopCounter where torch runs); `__call__()` runs one call.
"""

import hashlib
import json
import os
import sys
import types

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.common import Missing
from mrixai_jax.report import atomic

torch.set_num_threads(int(os.environ.get("MRIXAI_BENCH_THREADS", os.cpu_count() or 1)))

VGG16_CONFIG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")
VGG16_CONVS = ("conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1", "conv3_2", "conv3_3",
               "conv4_1", "conv4_2", "conv4_3", "conv5_1", "conv5_2", "conv5_3")


def count_flops(fn) -> float:
  """Matmul/conv FLOPs of one call (2 per multiply-add; elementwise ops and norms not counted)."""
  counter = FlopCounterMode(display=False)
  with counter:
    fn()
  return float(counter.get_total_flops())


def nchw(a) -> torch.Tensor:
  return torch.from_numpy(np.ascontiguousarray(np.asarray(a).transpose(0, 3, 1, 2)))


def nhwc(t: torch.Tensor) -> np.ndarray:
  return t.detach().numpy().transpose(0, 2, 3, 1)


# ----------------------------------------------------------------------------- UNet
def build_unet(spec):
  from diffusers import UNet2DModel  # pylint: disable=g-import-not-at-top
  m = spec["model"]
  torch.manual_seed(spec["seed"])
  return UNet2DModel(
      sample_size=spec["size"], in_channels=m["in_channels"], out_channels=m["out_channels"],
      layers_per_block=m["layers_per_block"], block_out_channels=tuple(m["block_out_channels"]),
      down_block_types=tuple(m["down_block_types"]), up_block_types=tuple(m["up_block_types"]),
      attention_head_dim=m["attention_head_dim"], norm_num_groups=m["norm_num_groups"], norm_eps=m["norm_eps"],
      dropout=m["dropout"], flip_sin_to_cos=m["flip_sin_to_cos"], freq_shift=m["freq_shift"],
      time_embedding_dim=m["time_embedding_dim"] or None)


def export_weights(model, spec, folder) -> str:
  """Writes the state dict once per (model config, seed) into `folder`; returns the file path."""
  key = hashlib.sha1(json.dumps([spec["model"], spec["seed"]], sort_keys=True).encode()).hexdigest()[:12]
  path = os.path.join(folder, f"weights_{key}.npz")
  if not os.path.exists(path):
    with atomic.atomic_path(path, ".npz") as tmp:
      np.savez(tmp, **{f"param/{k}": v.detach().numpy() for k, v in model.state_dict().items()})
  return path


def _scheduler_kwargs(spec):
  d, s = spec["diffusion"], spec["sample"]
  if d["beta_schedule"] != "linear":
    raise ValueError(f"reference supports the linear beta schedule only, got {d['beta_schedule']!r}")
  return dict(num_train_timesteps=d["num_timesteps"], beta_start=d["beta_start"], beta_end=d["beta_end"],
              beta_schedule="linear", clip_sample=s["clip_sample"], clip_sample_range=s["clip_range"])


class UnetForward:
  def __init__(self, spec):
    self.spec = spec

  def setup(self, path_in, path_out):
    inp = np.load(path_in)
    self.model = build_unet(self.spec).eval()
    self.sample = torch.cat([nchw(inp["x"]), nchw(inp["cond"])], 1)
    self.t = torch.from_numpy(inp["t"]).long()
    with torch.inference_mode():
      out = self.model(self.sample, self.t).sample
    np.savez(path_out, out=nhwc(out), weights_file=export_weights(self.model, self.spec, os.path.dirname(path_out)))
    return {"flops": count_flops(self)}

  def __call__(self):
    with torch.inference_mode():
      return self.model(self.sample, self.t).sample


class TrainStep:
  """ε-MSE on DDPM-noised images, backward, global-norm clipping, AdamW, EMA (foreach lerp), loss.item()."""

  def __init__(self, spec):
    self.spec = spec

  def setup(self, path_in, path_out):
    from diffusers import DDPMScheduler  # pylint: disable=g-import-not-at-top
    inp, train = np.load(path_in), self.spec["train"]
    self.model = build_unet(self.spec).train()
    cond = nchw(inp["cond"])
    pred = self.model(torch.cat([nchw(inp["x"]), cond], 1), torch.from_numpy(inp["t"]).long()).sample
    F.mse_loss(pred, nchw(inp["target"])).backward()
    grads = {f"grad/{k}": p.grad.numpy().copy() for k, p in self.model.named_parameters()}
    self.model.zero_grad(set_to_none=True)
    np.savez(path_out, weights_file=export_weights(self.model, self.spec, os.path.dirname(path_out)), **grads)

    self.params = [p for p in self.model.parameters()]
    self.ema = [p.detach().clone() for p in self.params]
    self.opt = torch.optim.AdamW(self.params, lr=train["learning_rate"], betas=(train["adam_b1"], train["adam_b2"]),
                                 eps=train["adam_eps"], weight_decay=train["weight_decay"])
    d = self.spec["diffusion"]
    self.noise_schedule = DDPMScheduler(num_train_timesteps=d["num_timesteps"], beta_start=d["beta_start"],
                                        beta_end=d["beta_end"], beta_schedule="linear")
    g = torch.Generator().manual_seed(self.spec["seed"])
    self.clean = torch.rand(cond.shape[0], 1, *cond.shape[2:], generator=g) * 2 - 1
    self.cond = cond
    flops = count_flops(self._loss_and_backward)
    self.opt.zero_grad(set_to_none=True)
    return {"flops": flops}

  def _loss_and_backward(self):
    noise = torch.randn_like(self.clean)
    ts = torch.randint(0, self.spec["diffusion"]["num_timesteps"], (self.clean.shape[0],))
    noisy = self.noise_schedule.add_noise(self.clean, noise, ts)
    loss = F.mse_loss(self.model(torch.cat([noisy, self.cond], 1), ts).sample, noise)
    loss.backward()
    return loss

  def __call__(self):
    train = self.spec["train"]
    loss = self._loss_and_backward()
    if train["grad_clip_norm"] > 0:
      torch.nn.utils.clip_grad_norm_(self.params, train["grad_clip_norm"])
    self.opt.step()
    self.opt.zero_grad(set_to_none=True)
    with torch.no_grad():
      torch._foreach_lerp_(self.ema, self.params, 1.0 - train["ema_decay"])  # pylint: disable=protected-access
    return loss.item()


class Ddim:
  """diffusers DDIMScheduler loop ("leading" spacing, eta 0). Also writes an unclipped run from
  our x_T for the check."""

  def __init__(self, spec):
    self.spec = spec

  def scheduler(self, clip):
    from diffusers import DDIMScheduler  # pylint: disable=g-import-not-at-top
    s = self.spec["sample"]
    kwargs = dict(_scheduler_kwargs(self.spec), clip_sample=clip)
    sched = DDIMScheduler(set_alpha_to_one=s["set_alpha_to_one"], steps_offset=0, timestep_spacing="leading", **kwargs)
    sched.set_timesteps(self.spec["steps"])
    return sched

  def loop(self, sched, x):
    with torch.inference_mode():
      for t in sched.timesteps:
        eps = self.model(torch.cat([x, self.cond], 1), t).sample
        x = sched.step(eps, t, x, eta=self.spec["sample"]["eta"]).prev_sample
    return x

  def setup(self, path_in, path_out):
    inp = np.load(path_in)
    self.model = build_unet(self.spec).eval()
    self.cond, self.x_T = nchw(inp["cond"]), nchw(inp["x_T"])
    unclipped = self.loop(self.scheduler(clip=False), self.x_T)
    np.savez(path_out, out_unclipped=nhwc(unclipped),
             weights_file=export_weights(self.model, self.spec, os.path.dirname(path_out)))
    self.sched = self.scheduler(clip=self.spec["sample"]["clip_sample"])
    with torch.inference_mode():
      one = count_flops(lambda: self.model(torch.cat([self.x_T, self.cond], 1), self.sched.timesteps[0]))
    return {"flops": one * self.spec["steps"]}

  def __call__(self):
    return self.loop(self.sched, self.x_T)


class Ddpm:
  """diffusers DDPMScheduler ("fixed_small" variance) over all T timesteps."""

  def __init__(self, spec):
    self.spec = spec

  def setup(self, path_in, path_out):
    from diffusers import DDPMScheduler  # pylint: disable=g-import-not-at-top
    self.model = build_unet(self.spec).eval()
    self.cond = nchw(np.load(path_in)["cond"])
    self.sched = DDPMScheduler(variance_type="fixed_small", **_scheduler_kwargs(self.spec))
    self.sched.set_timesteps(self.spec["diffusion"]["num_timesteps"])
    self.gen = torch.Generator().manual_seed(self.spec["seed"])
    np.savez(path_out, weights_file=export_weights(self.model, self.spec, os.path.dirname(path_out)))
    x = torch.randn(self.cond.shape[0], 1, *self.cond.shape[2:], generator=self.gen)
    with torch.inference_mode():
      one = count_flops(lambda: self.model(torch.cat([x, self.cond], 1), self.sched.timesteps[0]))
    return {"flops": one * len(self.sched.timesteps)}

  def __call__(self):
    x = torch.randn(self.cond.shape[0], 1, *self.cond.shape[2:], generator=self.gen)
    with torch.inference_mode():
      for t in self.sched.timesteps:
        eps = self.model(torch.cat([x, self.cond], 1), t).sample
        x = self.sched.step(eps, t, x, generator=self.gen).prev_sample
    return x


# ----------------------------------------------------------------------------- metrics
def _torchvision_vgg16_standin():
  """Registers a minimal `torchvision.models.vgg16` (layer list only, no weights) for `lpips`."""

  def vgg16(pretrained=False, **_):
    if pretrained:
      raise RuntimeError("the torchvision stand-in has no pretrained weights")
    layers, in_ch = [], 3
    for v in VGG16_CONFIG:
      if v == "M":
        layers.append(torch.nn.MaxPool2d(kernel_size=2, stride=2))
      else:
        layers += [torch.nn.Conv2d(in_ch, v, kernel_size=3, padding=1), torch.nn.ReLU(inplace=True)]
        in_ch = v
    return types.SimpleNamespace(features=torch.nn.Sequential(*layers))

  tv, models = types.ModuleType("torchvision"), types.ModuleType("torchvision.models")
  models.vgg16, tv.models = vgg16, models
  sys.modules.update({"torchvision": tv, "torchvision.models": models})


def import_lpips():
  """(the official `lpips` module, a note on how its VGG16 layer list was obtained)."""
  try:
    import lpips  # pylint: disable=g-import-not-at-top
    return lpips, "torchvision"
  except ModuleNotFoundError as e:
    if e.name == "lpips":
      raise Missing("reference: official lpips not installed (pip install --no-deps lpips==0.1.4)") from e
    if e.name != "torchvision":
      raise
  _torchvision_vgg16_standin()
  import lpips  # pylint: disable=g-import-not-at-top
  return lpips, "torchvision stand-in (layer list only)"


class Lpips:
  def __init__(self, spec):
    self.spec = spec

  def setup(self, path_in, path_out):
    lpips, vgg_source = import_lpips()
    inp = np.load(path_in)
    self.model = lpips.LPIPS(net="vgg", version="0.1", pretrained=True, pnet_rand=True, verbose=False).eval()
    convs = [m for m in self.model.net.modules() if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
      for conv, name in zip(convs, VGG16_CONVS, strict=True):
        conv.weight.copy_(torch.from_numpy(inp[f"vgg/{name}/kernel"].transpose(3, 2, 0, 1)))
        conv.bias.copy_(torch.from_numpy(inp[f"vgg/{name}/bias"]))
    self.a = nchw(inp["a"]).repeat(1, 3, 1, 1)  # grey -> RGB, as our metric does
    self.b = nchw(inp["b"]).repeat(1, 3, 1, 1)
    np.savez(path_out, out=self().reshape(-1).numpy())
    with torch.inference_mode():
      flops = count_flops(self)
    return {"flops": flops, "note": f"official lpips {getattr(lpips, '__version__', '?')}, VGG16 via {vgg_source}"}

  def __call__(self):
    with torch.inference_mode():
      return self.model(self.a, self.b)


class Ssim:
  def __init__(self, spec):
    self.spec = spec

  def setup(self, path_in, path_out):
    from skimage.metrics import structural_similarity  # pylint: disable=g-import-not-at-top
    self.fn = structural_similarity
    inp = np.load(path_in)
    self.a, self.b = inp["a"], inp["b"]
    np.savez(path_out, out=self())
    return {}

  def __call__(self):
    return np.array([self.fn(x[..., 0], y[..., 0], data_range=2.0, gaussian_weights=True, sigma=1.5,
                             use_sample_covariance=False) for x, y in zip(self.a, self.b)])


# ----------------------------------------------------------------------------- prototypes
def numpy_distances(z, prototypes):
  """ReLU(‖z‖² − 2 z·p + ‖p‖²) for 1x1 prototypes: `z [N,H,W,D]`, `[P,1,1,D]` -> `[N,H,W,P]`."""
  if prototypes.shape[1:3] != (1, 1):
    raise ValueError("numpy reference supports 1x1 prototypes only")
  flat, p = z.reshape(-1, z.shape[-1]), prototypes.reshape(prototypes.shape[0], -1)
  d = (flat * flat).sum(1, keepdims=True) - 2.0 * (flat @ p.T) + (p * p).sum(1)
  return np.maximum(d, 0.0).reshape(*z.shape[:3], p.shape[0])


class ProtoSimilarity:
  def __init__(self, spec):
    self.spec = spec

  def setup(self, path_in, path_out):
    inp = np.load(path_in)
    self.z, self.protos = inp["z"], inp["prototypes"]
    np.savez(path_out, out=self())
    return {}

  def __call__(self):
    return numpy_distances(self.z, self.protos)


class Push:
  """Batches in dataset order; a later batch wins only with a strictly smaller distance; inside a
  batch the first (image, h, w) in row-major order wins (numpy argmin)."""

  def __init__(self, spec):
    self.spec = spec

  def setup(self, path_in, path_out):
    inp = np.load(path_in)
    self.z, self.labels = inp["z"], inp["labels"]
    self.protos, self.proto_class = inp["prototypes"], inp["proto_class"]
    distance, image, cell, _ = self()
    np.savez(path_out, distance=distance, image=image, cell=cell)
    return {}

  def __call__(self):
    num, b = self.protos.shape[0], self.spec["batch"]
    best, image = np.full(num, np.inf), np.full(num, -1, np.int64)
    cell, patches = np.zeros((num, 2), np.int64), np.zeros(self.protos.shape, np.float32)
    for first in range(0, len(self.z), b):
      z = self.z[first:first + b]
      d = numpy_distances(z, self.protos)
      d = np.where(self.labels[first:first + b, ..., None] == self.proto_class, d, np.inf)
      flat = np.moveaxis(d, -1, 0).reshape(num, -1)
      index = flat.argmin(axis=1)
      value = flat[np.arange(num), index]
      for j in np.nonzero(value < best)[0]:
        i, h, w = np.unravel_index(index[j], d.shape[:3])
        best[j], image[j], cell[j] = value[j], first + i, (h, w)
        patches[j] = z[i, h:h + 1, w:w + 1]  # the projected prototype, as ours keeps it
    return best, image, cell, patches


# ----------------------------------------------------------------------------- peak
class Matmul:
  def __init__(self, spec):
    self.spec = spec

  def setup(self, path_in, path_out):
    inp = np.load(path_in)
    self.a, self.b = torch.from_numpy(inp["a"]), torch.from_numpy(inp["b"])
    np.savez(path_out, out=self().numpy())
    return {"note": "torch.mm"}

  def __call__(self):
    with torch.inference_mode():
      return torch.mm(self.a, self.b)


BUILDERS = {"unet_forward": UnetForward, "train_step": TrainStep, "ddim": Ddim, "ddpm": Ddpm,
            "lpips": Lpips, "ssim": Ssim, "proto_similarity": ProtoSimilarity, "push": Push, "matmul": Matmul}


def make_workload(name, spec):
  del name
  return BUILDERS[spec["kind"]](spec)


def describe() -> dict:
  import diffusers  # pylint: disable=g-import-not-at-top
  import skimage  # pylint: disable=g-import-not-at-top
  return {"side": "reference", "torch": torch.__version__, "diffusers": diffusers.__version__,
          "scikit-image": skimage.__version__, "numpy": np.__version__, "torch_threads": torch.get_num_threads()}
