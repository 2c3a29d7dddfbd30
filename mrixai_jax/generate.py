"""The logic behind ``sample.py``: sample from the latest EMA checkpoint and write ``WORKDIR/samples/``.

Outputs (all written atomically):
  samples.npz       `samples [N,H,W,1]`, `labels [N,H,W]` uint8, `counterparts [N,H,W,1]` (masks from
                    the dataset only), `counterpart_patient_id [N]`, `counterpart_slice_index [N]`,
                    `mask_source [N]` (where each mask came from), `trajectory_steps [K]` (indices into
                    the step sequence), `trajectory_timesteps [K]` (diffusion t), `trajectory_xt`,
                    `trajectory_eps_norm`, `trajectory_x0` (`[N,K,H,W,1]`), `nonfinite_index [M]`,
                    and the run's `sampler`, `num_steps`, `eta`, `guidance_scale`, `seed`,
                    `checkpoint_step`.
  grid.png          sample | mask | real counterpart, first `GRID_ROWS` images.
  trajectory.png    x_t, |ε̂|, x̂0 along the recorded steps, first `TRAJECTORY_ROWS` images.
  dicom/*.dcm       Secondary Capture files (when `sample.write_dicom`).

Image i of a run uses the key `fold_in(PRNGKey(sample.seed), i)` (see `sampling`), so a run's
images do not depend on `sample.batch_size` or the number of devices.
"""

import pathlib
import sys
import time

import jax
import numpy as np

from mrixai_jax import progress
from mrixai_jax import workdir as workdir_lib
from mrixai_jax.errors import ConfigError, UserError

GRID_ROWS = 16
TRAJECTORY_ROWS = 4
MASK_SUFFIXES = (".png", ".npy")


# ---------------------------------------------------------------- masks
def load_mask_folder(folder, image_size: int) -> tuple:
  """Label maps `[M, S, S]` uint8 and their file names from the PNG/NPY files of `folder`, sorted by name.

  Each file must hold one `S x S` map (S = `data.image_size`) with values in 0..3
  (`masks.read_label_map`); any problem raises a `UserError` naming the file.
  """
  from mrixai_jax.data import masks  # pylint: disable=g-import-not-at-top

  folder = pathlib.Path(folder)
  if not folder.is_dir():
    raise UserError(f"--masks: {folder} is not a folder")
  files = sorted(p for p in folder.iterdir() if p.suffix.lower() in MASK_SUFFIXES)
  if not files:
    raise UserError(f"--masks: {folder} holds no {'/'.join(MASK_SUFFIXES)} label maps")
  maps = [masks.read_label_map(str(path), (image_size, image_size)) for path in files]
  return np.stack(maps), [p.name for p in files]


def _pick(num_available: int, num: int, seed: int) -> np.ndarray:
  """`num` row indices: a seeded permutation of the available rows, cycled when `num` exceeds them."""
  order = np.random.default_rng(seed).permutation(num_available)
  return order[np.arange(num) % num_available]


def select_masks(config, workdir: str, masks_path=None) -> dict:
  """Conditioning masks for `sample.num_samples` images: `labels [N,S,S]`, `mask_source [N]` str and,
  for dataset masks, `counterparts [N,S,S,1]`, `counterpart_patient_id`, `counterpart_slice_index`.

  masks_path: a folder of label maps (default `sample.masks`); empty: masks of `sample.split`.
  """
  s, num = config.sample, int(config.sample.num_samples)
  masks_path = masks_path or s.get("masks")
  if masks_path:
    maps, names = load_mask_folder(masks_path, int(config.data.image_size))
    rows = np.arange(num) % len(maps)  # folder order, cycled
    return {"labels": maps[rows], "mask_source": np.array([names[r] for r in rows])}
  from mrixai_jax.data import pipeline  # pylint: disable=g-import-not-at-top

  split = pipeline.load_split(config.data, s.split, workdir)
  rows = _pick(len(split["labels"]), num, int(s.seed))
  patient, slice_index = split["patient_id"][rows], split["slice_index"][rows]
  return {"labels": np.asarray(split["labels"][rows], np.uint8),
          "counterparts": np.asarray(split["image"][rows], np.float32),
          "counterpart_patient_id": patient, "counterpart_slice_index": slice_index,
          "mask_source": np.array([f"{s.split}:{p}:{i}" for p, i in zip(patient, slice_index)])}


# ---------------------------------------------------------------- sampling
def sample_images(sampler, params, labels: np.ndarray, seed: int, batch_size: int, null_cond=0.0) -> dict:
  """Runs `sampler`, bound once to `params` (`Sampler.bind`), over `labels [N,S,S]` in batches of
  `batch_size` (the last one padded), with `progress.batch_slices`' lines ("sample: done/N images").

  Returns numpy `samples`, `finite`, `trajectory_xt`, `trajectory_eps_norm`, `trajectory_x0` (`[N, ...]`).
  """
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top

  from mrixai_jax.diffusion import sampling  # pylint: disable=g-import-not-at-top
  from mrixai_jax.diffusion.conditioning import one_hot_labels  # pylint: disable=g-import-not-at-top

  key = jax.random.PRNGKey(seed)
  num = len(labels)
  parts = []
  sample = sampler.bind(params)
  for batch in progress.batch_slices(num, batch_size, "sample"):
    rows = np.arange(batch.start, batch.start + batch_size) % num  # pad the last batch by wrapping around
    out = sample(sampling.image_keys(key, batch.start, batch_size), one_hot_labels(jnp.asarray(labels[rows])),
                 null_cond)
    parts.append({k: np.asarray(v)[:batch.stop - batch.start] for k, v in out._asdict().items()})
  return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def apply_overrides(config, **overrides) -> None:
  """Sets the non-None `overrides` (sample.py flag name -> value) in `config.sample`, in place."""
  names = {"num_samples": "num_samples", "sampler": "sampler", "steps": "num_steps", "seed": "seed",
           "batch_size": "batch_size", "guidance_scale": "guidance_scale", "eta": "eta",
           "write_dicom": "write_dicom", "masks": "masks"}
  for flag, value in overrides.items():
    if value is not None:
      config.sample[names[flag]] = value


def sample_from_checkpoint(config, workdir: str, labels: np.ndarray, announce: bool = False) -> dict:
  """Samples one image per label map `labels [N,S,S]` from the latest EMA checkpoint in `workdir`
  with the config's sampler (`config.sample`, `diffusion.prediction`).

  announce: print one line saying what runs (images, sampler, steps, checkpoint, devices).
  Returns `sample_images`' arrays plus `sampler` (the `Sampler`), `checkpoint_step` and `seconds`.
  Raises UserError without a checkpoint, ConfigError for an impossible sampler setting.
  """
  from mrixai_jax import sharding  # pylint: disable=g-import-not-at-top
  from mrixai_jax.diffusion import sampling  # pylint: disable=g-import-not-at-top
  from mrixai_jax.diffusion import schedule as schedule_lib  # pylint: disable=g-import-not-at-top
  from mrixai_jax.models import unet as unet_lib  # pylint: disable=g-import-not-at-top
  from mrixai_jax.training import checkpoint  # pylint: disable=g-import-not-at-top

  sample = config.sample
  try:
    params, step = checkpoint.load_inference_params(workdir)
  except FileNotFoundError as e:
    raise UserError(str(e)) from None
  schedule = schedule_lib.from_config(config.diffusion)
  model = unet_lib.build_model(config)
  mesh = sharding.make_mesh() if jax.device_count() > 1 else None
  if mesh is not None:
    sharding.check_batch_divisible(int(sample.batch_size), mesh, "sample.batch_size")
  try:
    sampler = sampling.sampler_from_config(unet_lib.model_fn(model), schedule, sample,
                                           prediction=config.diffusion.prediction,
                                           image_channels=int(config.model.out_channels), mesh=mesh)
  except ValueError as e:
    raise ConfigError(f"config.sample: {e}") from None
  if announce:
    print(f"sample: {len(labels)} images, {sample.sampler} with {sampler.plan.num_steps} steps, "
          f"checkpoint step {step}, {jax.device_count()} device(s)", file=sys.stderr, flush=True)
  start = time.perf_counter()
  result = sample_images(sampler, params, labels, int(sample.seed), int(sample.batch_size), unet_lib.null_cond(params))
  return dict(result, sampler=sampler, checkpoint_step=step, seconds=time.perf_counter() - start)


def run(config, workdir: str, masks_path=None) -> dict:
  """Samples `config.sample.num_samples` images and writes `WORKDIR/samples/`; returns a summary dict."""
  sample = config.sample
  if sample.num_samples <= 0:
    raise ConfigError(f"config.sample.num_samples: must be positive, got {sample.num_samples}")
  out_dir = pathlib.Path(workdir) / workdir_lib.SAMPLES_SUBDIR
  masks = select_masks(config, workdir, masks_path)  # validate inputs before the expensive parts
  result = sample_from_checkpoint(config, workdir, masks["labels"], announce=True)
  sampler, step, seconds = result.pop("sampler"), result.pop("checkpoint_step"), result.pop("seconds")

  nonfinite = np.nonzero(~result.pop("finite"))[0]
  if nonfinite.size:
    print(f"sample: WARNING: {nonfinite.size} image(s) have non-finite values (NaN/Inf): indices "
          f"{nonfinite.tolist()[:50]}{' ...' if nonfinite.size > 50 else ''}", file=sys.stderr, flush=True)
  arrays = dict(masks, **result, trajectory_steps=np.asarray(sampler.trajectory_indices, np.int32),
                trajectory_timesteps=sampler.trajectory_timesteps.astype(np.int32), nonfinite_index=nonfinite,
                sampler=np.array(sample.sampler), num_steps=np.int32(sampler.plan.num_steps),
                eta=np.float32(sample.eta), guidance_scale=np.float32(sample.guidance_scale),
                seed=np.int64(sample.seed), checkpoint_step=np.int64(step))
  write_outputs(out_dir, arrays, write_dicom=bool(sample.write_dicom))
  return {"num_samples": int(sample.num_samples), "seconds": seconds, "images_per_second": sample.num_samples / seconds,
          "nonfinite_index": nonfinite.tolist(), "out_dir": str(out_dir)}


def write_outputs(out_dir, arrays: dict, write_dicom: bool) -> None:
  """samples.npz, grid.png, trajectory.png and (optionally) dicom/ under `out_dir`."""
  from mrixai_jax.report import figures  # pylint: disable=g-import-not-at-top
  from mrixai_jax.atomic import atomic_path  # pylint: disable=g-import-not-at-top

  out_dir = pathlib.Path(out_dir)
  with atomic_path(out_dir / "samples.npz", suffix=".npz") as tmp:
    np.savez(tmp, **arrays)
  rows = min(GRID_ROWS, len(arrays["samples"]))
  counterparts = arrays["counterparts"][:rows] if "counterparts" in arrays else None
  figures.sample_grid(out_dir / "grid.png", arrays["samples"][:rows], arrays["labels"][:rows], counterparts,
                      row_titles=arrays["mask_source"][:rows])
  figures.trajectory_figure(out_dir / "trajectory.png", arrays["trajectory_xt"][:TRAJECTORY_ROWS],
                            arrays["trajectory_eps_norm"][:TRAJECTORY_ROWS], arrays["trajectory_timesteps"],
                            arrays["trajectory_x0"][:TRAJECTORY_ROWS])
  if write_dicom:
    from mrixai_jax.data import synthetic_dicom  # pylint: disable=g-import-not-at-top

    uids = synthetic_dicom.new_series_uids()
    for i, image in enumerate(arrays["samples"]):
      synthetic_dicom.write_secondary_capture(out_dir / "dicom" / f"synthetic_{i:05d}.dcm", image[..., 0], uids,
                                              instance_number=i + 1, comment=f"mask: {arrays['mask_source'][i]}")
