"""Start-up checks of a config: impossible values fail before any work, naming the key."""

import functools

from mrixai_jax.diffusion.names import DPM_SAMPLERS, LOSS_WEIGHTINGS, PREDICTIONS, SAMPLERS, TIMESTEP_SPACINGS
from mrixai_jax.errors import ConfigError

HEAD_KINDS = ("ppnet", "eppnet", "protopool")
DATASETS = ("breast_phantom", "duke_breast_mri")
TASKS = ("diffusion", "heads")


def _require(condition: bool, key: str, message: str) -> None:
  if not condition:
    raise ConfigError(f"config.{key}: {message}")


BATCH_KEYS = ("train.batch_size", "sample.batch_size", "heads.train.batch_size")  # sharded over all devices


def batch_sizes(config) -> tuple:
  """The values of BATCH_KEYS in `config`."""
  return tuple(int(functools.reduce(getattr, key.split("."), config)) for key in BATCH_KEYS)


def validate(config, num_devices: int | None = None) -> None:
  """Raises `ConfigError` naming the first offending key. `num_devices` defaults to jax's count."""
  if num_devices is None:
    import jax  # pylint: disable=g-import-not-at-top

    num_devices = jax.device_count()
  _require(config.task in TASKS, "task", f"must be one of {TASKS}, got {config.task!r}")
  d, m, f, t, s, h = config.data, config.model, config.diffusion, config.train, config.sample, config.heads
  _require(d.name in DATASETS, "data.name", f"must be one of {DATASETS}, got {d.name!r}")
  _require(d.image_size > 0, "data.image_size", f"must be positive, got {d.image_size}")
  factor = 2 ** (len(m.block_out_channels) - 1)
  _require(d.image_size % factor == 0, "data.image_size",
           f"{d.image_size} is not divisible by the UNet's downsampling factor {factor} "
           f"(2^(len(model.block_out_channels) - 1))")
  _require(d.name != "duke_breast_mri" or bool(d.manual_dir), "data.manual_dir",
           "duke_breast_mri needs the folder holding the Duke DICOM tree and segmentation NRRDs")
  _require(len(m.down_block_types) == len(m.block_out_channels) == len(m.up_block_types),
           "model.down_block_types", "down/up block types need one entry per block_out_channels")
  _require(all(c % m.norm_num_groups == 0 for c in m.block_out_channels), "model.norm_num_groups",
           f"must divide every block_out_channels entry {tuple(m.block_out_channels)}")
  _require(f.num_timesteps > 0, "diffusion.num_timesteps", "must be positive")
  for key, batch in zip(BATCH_KEYS, batch_sizes(config)):
    _require(batch > 0 and batch % num_devices == 0, key,
             f"{batch} is not a positive multiple of the device count ({num_devices})")
  _require(0.0 <= f.p_uncond < 1.0, "diffusion.p_uncond", f"must be in [0, 1), got {f.p_uncond}")
  _require(f.prediction in PREDICTIONS, "diffusion.prediction", f"must be one of {PREDICTIONS}, got {f.prediction!r}")
  _require(not (f.zero_terminal_snr and f.prediction == "eps"), "diffusion.zero_terminal_snr",
           "needs diffusion.prediction 'v' or 'x0': at zero terminal SNR x0 cannot be recovered from eps at t = T - 1")
  _require(f.loss_weighting in LOSS_WEIGHTINGS, "diffusion.loss_weighting",
           f"must be one of {LOSS_WEIGHTINGS}, got {f.loss_weighting!r}")
  _require(f.min_snr_gamma > 0, "diffusion.min_snr_gamma", f"must be positive, got {f.min_snr_gamma}")
  _require(t.num_steps > 0 or t.num_steps == -1, "train.num_steps",
           f"must be positive, or -1 for train.num_epochs epochs; got {t.num_steps}")
  _require(t.num_steps != -1 or t.num_epochs > 0, "train.num_epochs",
           f"must be positive when train.num_steps = -1, got {t.num_epochs}")
  _require(t.learning_rate > 0, "train.learning_rate", f"must be positive, got {t.learning_rate}")
  _require(0.0 <= t.ema_decay < 1.0, "train.ema_decay", f"must be in [0, 1), got {t.ema_decay}")
  _require(s.sampler in SAMPLERS, "sample.sampler", f"must be one of {SAMPLERS}, got {s.sampler!r}")
  _require(s.timestep_spacing in TIMESTEP_SPACINGS, "sample.timestep_spacing",
           f"must be one of {TIMESTEP_SPACINGS}, got {s.timestep_spacing!r}")
  _require(not s.karras_sigmas or s.sampler in DPM_SAMPLERS, "sample.karras_sigmas",
           f"applies to the samplers {DPM_SAMPLERS} only, not {s.sampler!r}")
  _require(s.eta >= 0, "sample.eta", f"must be >= 0, got {s.eta}")
  _require(0 < s.num_steps <= f.num_timesteps, "sample.num_steps",
           f"{s.num_steps} must be in 1..diffusion.num_timesteps ({f.num_timesteps})")
  # trajectory_steps index a trajectory_num_steps-step sequence; the sampler rescales them to its own.
  steps = s.trajectory_num_steps
  _require(steps > 0, "sample.trajectory_num_steps", f"must be positive, got {steps}")
  _require(all(-steps <= k < steps for k in s.trajectory_steps), "sample.trajectory_steps",
           f"indices must lie in 0..{steps - 1} (sample.trajectory_num_steps = {steps}; negative ones count "
           "from the end)")
  _require(h.kind in HEAD_KINDS, "heads.kind", f"must be one of {HEAD_KINDS}, got {h.kind!r}")
  _require(all(k in HEAD_KINDS for k in h.kinds), "heads.kinds", f"entries must be in {HEAD_KINDS}")
  _require(0.0 < h.purity_threshold <= 1.0, "heads.purity_threshold", "must be in (0, 1]")
  e = config.explain
  _require(e.head_seeds >= 1, "explain.head_seeds", f"must be >= 1, got {e.head_seeds}")
  _require(0 <= h.seed_index, "heads.seed_index", f"must be >= 0, got {h.seed_index}")
  _require(e.permutations >= 1, "explain.permutations", f"must be >= 1, got {e.permutations}")
  ht = h.train
  _require(ht.num_steps > 0, "heads.train.num_steps", f"must be positive, got {ht.num_steps}")
  _require(ht.warm_steps >= 0, "heads.train.warm_steps", f"must be >= 0, got {ht.warm_steps}")
  _require(ht.last_layer_steps >= 0, "heads.train.last_layer_steps", f"must be >= 0, got {ht.last_layer_steps}")
  _require(ht.warm_steps + ht.last_layer_steps <= ht.num_steps, "heads.train.num_steps",
           f"{ht.num_steps} is less than heads.train.warm_steps + heads.train.last_layer_steps "
           f"({ht.warm_steps} + {ht.last_layer_steps}): the joint phase would have negative length")
  _require(h.train.feature_cache_mb >= 0, "heads.train.feature_cache_mb",
           f"must be >= 0 (0: never cache backbone features), got {h.train.feature_cache_mb}")
