"""Reference side: the peers our code is measured against, as their users run them.

- UNet, training step, DDIM/DDPM: diffusers `UNet2DModel` (eager PyTorch, NCHW) with
  `DDIMScheduler` / `DDPMScheduler` loops and `torch.optim.AdamW`; weights from the diffusers
  default initialisation (seeded), exported for our side to load through the diffusers-layout port.
  Timed in `spec["reference_dtype"]`: float32, or float16 on CUDA ("diffusers fp16": `.half()`
  model and inputs; the training step with `torch.autocast` float16 and a `GradScaler`). On the CPU
  float16 is not used (diffusers' fp16 is a GPU mode; torch's CPU half kernels are not what its
  users run): the reference stays float32 there and says so in its note.
- LPIPS: the official `lpips` package (v0.1 linear layers from its own weight file), with the same
  ImageNet VGG16 trunk weights our metric uses. Where torchvision is not installed (it has no
  build for the CPU torch wheel used here), a stand-in declares torchvision's `vgg16().features`
  layer list so the official code runs unmodified.
- SSIM: scikit-image `structural_similarity`, one call per image.
- Prototype similarity and push: numpy (OpenBLAS) kernels.
- Peak: `torch.mm`.
Device: `MRIXAI_BENCH_DEVICE` = cpu | cuda | auto (default: cuda when available). On CUDA, models
and inputs live on the GPU, TF32 is off (float32 means float32; the outputs we are checked against
are always computed in float32), and every call synchronises before it returns. The scikit-image
and numpy peers run on the CPU.
Each class: `setup(path_in, path_out)` reads our inputs, writes its float32 outputs (and weights),
returns FLOPs (torch FlopCounter where torch runs) and, when timed in float16, the check of that
float16 output against its own float32 one (`low_precision_check`); `__call__()` runs one call.
"""

import contextlib
import hashlib
import json
import os
import sys
import types

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.common import Missing, compare
from mrixai_jax import atomic

torch.set_num_threads(int(os.environ.get("MRIXAI_BENCH_THREADS", os.cpu_count() or 1)))
DEVICE_ENV = "MRIXAI_BENCH_DEVICE"


def select_device(want: str) -> torch.device:
  """cpu | cuda | auto -> the torch device the reference runs on."""
  if want == "auto":
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
  if want == "cuda" and not torch.cuda.is_available():
    raise SystemExit(f"{DEVICE_ENV}=cuda but torch {torch.__version__} sees no CUDA device")
  if want not in ("cpu", "cuda"):
    raise SystemExit(f"{DEVICE_ENV} must be cpu, cuda or auto, got {want!r}")
  return torch.device(want)


DEVICE = select_device(os.environ.get(DEVICE_ENV, "auto"))
if DEVICE.type == "cuda":  # float32 is float32 (cuDNN convolutions default to TF32)
  torch.backends.cuda.matmul.allow_tf32 = False
  torch.backends.cudnn.allow_tf32 = False


def synchronize() -> None:
  if DEVICE.type == "cuda":
    torch.cuda.synchronize()


def timed_dtype(spec) -> torch.dtype:
  """The dtype the workload is timed in: float16 only on CUDA (see the module doc)."""
  return torch.float16 if spec["reference_dtype"] == "float16" and DEVICE.type == "cuda" else torch.float32


def dtype_note(spec) -> str:
  if spec["reference_dtype"] == "float16" and DEVICE.type != "cuda":
    return "float32 (float16 asked for; on the CPU the reference stays float32)"
  return str(timed_dtype(spec)).replace("torch.", "")

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
  """NHWC numpy -> NCHW tensor on DEVICE."""
  return torch.from_numpy(np.ascontiguousarray(np.asarray(a).transpose(0, 3, 1, 2))).to(DEVICE)


def nhwc(t: torch.Tensor) -> np.ndarray:
  """NCHW tensor (any device, any float dtype) -> NHWC float32 numpy."""
  return t.detach().float().cpu().numpy().transpose(0, 2, 3, 1)


def low_precision_check(low, full, spec) -> dict:
  """Our tolerance rule applied to the reference's own float16 result against its float32 one."""
  return compare(low, full, rtol=spec["rtol"])


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
      time_embedding_dim=m["time_embedding_dim"] or None).to(DEVICE)


def export_weights(model, spec, folder) -> str:
  """Writes the state dict once per (model config, seed) into `folder`; returns the file path."""
  key = hashlib.sha1(json.dumps([spec["model"], spec["seed"]], sort_keys=True).encode()).hexdigest()[:12]
  path = os.path.join(folder, f"weights_{key}.npz")
  if not os.path.exists(path):
    with atomic.atomic_path(path, ".npz") as tmp:
      np.savez(tmp, **{f"param/{k}": v.detach().float().cpu().numpy() for k, v in model.state_dict().items()})
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
    self.t = torch.from_numpy(inp["t"]).long().to(DEVICE)
    out = nhwc(self())
    np.savez(path_out, out=out, weights_file=export_weights(self.model, self.spec, os.path.dirname(path_out)))
    info = {"note": dtype_note(self.spec)}
    if timed_dtype(self.spec) == torch.float16:
      self.model, self.sample = self.model.half(), self.sample.half()
      info["low_precision_check"] = low_precision_check(nhwc(self()), out, self.spec)
    info["flops"] = count_flops(self)
    return info

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
    self.low = timed_dtype(self.spec) == torch.float16  # autocast float16 + GradScaler
    fixed = (torch.cat([nchw(inp["x"]), cond], 1), torch.from_numpy(inp["t"]).long().to(DEVICE), nchw(inp["target"]))
    grads = self._fixed_grads(*fixed, low=False)
    np.savez(path_out, weights_file=export_weights(self.model, self.spec, os.path.dirname(path_out)),
             **{f"grad/{k}": g for k, g in grads.items()})
    info = {"note": dtype_note(self.spec) + (" autocast + GradScaler, float32 weights" if self.low else "")}
    if self.low:
      low = self._fixed_grads(*fixed, low=True)
      info["low_precision_check"] = low_precision_check(list(low.values()), list(grads.values()), self.spec)

    self.params = [p for p in self.model.parameters()]
    self.ema = [p.detach().clone() for p in self.params]
    self.opt = torch.optim.AdamW(self.params, lr=train["learning_rate"], betas=(train["adam_b1"], train["adam_b2"]),
                                 eps=train["adam_eps"], weight_decay=train["weight_decay"])
    d = self.spec["diffusion"]
    self.noise_schedule = DDPMScheduler(num_train_timesteps=d["num_timesteps"], beta_start=d["beta_start"],
                                        beta_end=d["beta_end"], beta_schedule="linear")
    g = torch.Generator().manual_seed(self.spec["seed"])
    self.clean = (torch.rand(cond.shape[0], 1, *cond.shape[2:], generator=g) * 2 - 1).to(DEVICE)
    self.cond = cond
    self.scaler = torch.amp.GradScaler(DEVICE.type) if self.low else None
    info["flops"] = count_flops(self._loss_and_backward)
    self.opt.zero_grad(set_to_none=True)
    return info

  @staticmethod
  def _autocast(low: bool):
    return torch.autocast(DEVICE.type, dtype=torch.float16) if low else contextlib.nullcontext()

  def _fixed_grads(self, sample, t, target, low: bool) -> dict:
    """{param name: gradient of the ε-MSE as float32 numpy} on fixed inputs; `low`: under autocast
    float16 with a fixed loss scale of 2^16 (what the GradScaler starts at), unscaled."""
    scale = 2.0 ** 16 if low else 1.0
    with self._autocast(low):
      loss = F.mse_loss(self.model(sample, t).sample.float(), target)
    (loss * scale).backward()
    grads = {k: (p.grad.float() / scale).cpu().numpy() for k, p in self.model.named_parameters()}
    self.model.zero_grad(set_to_none=True)
    return grads

  def _loss_and_backward(self):
    noise = torch.randn_like(self.clean)
    ts = torch.randint(0, self.spec["diffusion"]["num_timesteps"], (self.clean.shape[0],), device=DEVICE)
    noisy = self.noise_schedule.add_noise(self.clean, noise, ts)
    with self._autocast(self.low):
      loss = F.mse_loss(self.model(torch.cat([noisy, self.cond], 1), ts).sample.float(), noise)
    (self.scaler.scale(loss) if self.low else loss).backward()
    return loss

  def __call__(self):
    train = self.spec["train"]
    loss = self._loss_and_backward()
    if self.low:
      self.scaler.unscale_(self.opt)
    if train["grad_clip_norm"] > 0:
      torch.nn.utils.clip_grad_norm_(self.params, train["grad_clip_norm"])
    if self.low:
      self.scaler.step(self.opt)
      self.scaler.update()
    else:
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
    unclipped = nhwc(self.loop(self.scheduler(clip=False), self.x_T))
    np.savez(path_out, out_unclipped=unclipped,
             weights_file=export_weights(self.model, self.spec, os.path.dirname(path_out)))
    info = {"note": dtype_note(self.spec)}
    if timed_dtype(self.spec) == torch.float16:
      self.model, self.cond, self.x_T = self.model.half(), self.cond.half(), self.x_T.half()
      low = nhwc(self.loop(self.scheduler(clip=False), self.x_T))
      info["low_precision_check"] = low_precision_check(low, unclipped, self.spec)
    self.sched = self.scheduler(clip=self.spec["sample"]["clip_sample"])
    with torch.inference_mode():
      one = count_flops(lambda: self.model(torch.cat([self.x_T, self.cond], 1), self.sched.timesteps[0]))
    info["flops"] = one * self.spec["steps"]
    return info

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
    self.gen = torch.Generator(DEVICE).manual_seed(self.spec["seed"])
    np.savez(path_out, weights_file=export_weights(self.model, self.spec, os.path.dirname(path_out)))
    if timed_dtype(self.spec) == torch.float16:
      self.model, self.cond = self.model.half(), self.cond.half()
    x = self.noise()
    with torch.inference_mode():
      one = count_flops(lambda: self.model(torch.cat([x, self.cond], 1), self.sched.timesteps[0]))
    return {"flops": one * len(self.sched.timesteps), "note": dtype_note(self.spec)}

  def noise(self):
    return torch.randn(self.cond.shape[0], 1, *self.cond.shape[2:], generator=self.gen, device=DEVICE,
                       dtype=self.cond.dtype)

  def __call__(self):
    x = self.noise()
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
  except ModuleNotFoundError as e:
    if e.name == "lpips":
      raise Missing("reference: official lpips not installed (pip install --no-deps lpips==0.1.4)") from e
    if e.name != "torchvision":
      raise
  else:
    try:  # lpips 0.1.4 asks torchvision for vgg16(pretrained=False), deprecated since torchvision 0.13
      lpips.pretrained_networks.tv.vgg16(pretrained=False)
      return lpips, "torchvision"
    except TypeError:
      _torchvision_vgg16_standin()
      lpips.pretrained_networks.tv = sys.modules["torchvision.models"]
      return lpips, "torchvision stand-in (layer list only; this torchvision refuses pretrained=)"
  _torchvision_vgg16_standin()
  import lpips  # pylint: disable=g-import-not-at-top
  return lpips, "torchvision stand-in (layer list only)"


class Lpips:
  def __init__(self, spec):
    self.spec = spec

  def setup(self, path_in, path_out):
    lpips, vgg_source = import_lpips()
    inp = np.load(path_in)
    self.model = lpips.LPIPS(net="vgg", version="0.1", pretrained=True, pnet_rand=True, verbose=False).eval().to(DEVICE)
    convs = [m for m in self.model.net.modules() if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
      for conv, name in zip(convs, VGG16_CONVS, strict=True):
        conv.weight.copy_(torch.from_numpy(inp[f"vgg/{name}/kernel"].transpose(3, 2, 0, 1)))
        conv.bias.copy_(torch.from_numpy(inp[f"vgg/{name}/bias"]))
    self.a = nchw(inp["a"]).repeat(1, 3, 1, 1)  # grey -> RGB, as our metric does
    self.b = nchw(inp["b"]).repeat(1, 3, 1, 1)
    np.savez(path_out, out=self().reshape(-1).cpu().numpy())
    with torch.inference_mode():
      flops = count_flops(self)
    return {"flops": flops, "note": f"official lpips {getattr(lpips, '__version__', '?')}, VGG16 via {vgg_source}, "
                                    f"trunk {self.spec.get('trunk', 'imagenet')}"}

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
    self.a, self.b = torch.from_numpy(inp["a"]).to(DEVICE), torch.from_numpy(inp["b"]).to(DEVICE)
    np.savez(path_out, out=self().cpu().numpy())
    self.a, self.b = self.a.to(timed_dtype(self.spec)), self.b.to(timed_dtype(self.spec))
    return {"note": f"torch.mm, {dtype_note(self.spec)}"}

  def __call__(self):
    with torch.inference_mode():
      return torch.mm(self.a, self.b)


BUILDERS = {"unet_forward": UnetForward, "train_step": TrainStep, "ddim": Ddim, "ddpm": Ddpm,
            "lpips": Lpips, "ssim": Ssim, "proto_similarity": ProtoSimilarity, "push": Push, "matmul": Matmul}


class Synchronized:
  """A workload whose setup and calls return only once the GPU has finished (no-op on the CPU)."""

  def __init__(self, workload):
    self.workload = workload

  def setup(self, path_in, path_out):
    info = self.workload.setup(path_in, path_out)
    synchronize()
    return info

  def __call__(self):
    out = self.workload()
    synchronize()
    return out


def make_workload(name, spec):
  del name
  workload = BUILDERS[spec["kind"]](spec)
  return Synchronized(workload) if DEVICE.type == "cuda" else workload


def device_name() -> str:
  if DEVICE.type == "cuda":
    return f"cuda: {torch.cuda.get_device_name(DEVICE)}"
  return "cpu"


def describe() -> dict:
  import diffusers  # pylint: disable=g-import-not-at-top
  import skimage  # pylint: disable=g-import-not-at-top
  return {"side": "reference", "torch": torch.__version__, "diffusers": diffusers.__version__,
          "scikit-image": skimage.__version__, "numpy": np.__version__, "torch_threads": torch.get_num_threads(),
          "device": device_name(), "cuda": torch.version.cuda if DEVICE.type == "cuda" else None,
          "tf32": bool(torch.backends.cudnn.allow_tf32) if DEVICE.type == "cuda" else None}
