"""Table 1 of the paper from a samples file: PSNR, SSIM, LPIPS, FID / FD-VGG, Dice.

  python -m mrixai_jax.evaluate --workdir=DIR [--config=configs/demo.py]

Reads `DIR/samples/samples.npz` (`samples [N,H,W,1]`, `labels [N,H,W]`, optional
`counterparts [N,H,W,1]`, all images in [-1, 1]) and writes `DIR/eval/metrics.json` and
`DIR/eval/metrics.md` (atomically). PSNR/SSIM/LPIPS compare each sample with its real counterpart
(mean ± sample SD over images); FID and FD-VGG compare the two sets; Dice compares the classical
breast segmentation of each sample with its conditioning mask (labels > 0).
Without --config the config recorded in DIR (else the repository's configs/default.py) supplies the
`metrics` section.
"""

import logging
import pathlib
import time

import numpy as np

from mrixai_jax import atomic
from mrixai_jax import errors
from mrixai_jax import progress
from mrixai_jax import workdir as workdir_lib
from mrixai_jax.explain import statistics
from mrixai_jax.pretrained import cache
from mrixai_jax.report import quality_tables


def _batched(name: str, fn, a, b, batch_size: int) -> np.ndarray:
  """fn over aligned batches of a and b -> [N]; logs progress (images/s, ETA) every ~10 s."""
  return np.concatenate([np.asarray(fn(a[rows], b[rows])) for rows in progress.batch_slices(len(a), batch_size, name)])


def _set_distance(name: str, compute) -> tuple:
  """(value or None, error text or None): a missing weight file must not sink the whole table."""
  try:
    return float(compute()), None
  except cache.WeightsError as e:
    logging.warning("%s not computed: %s", name, e)
    return None, str(e)


def paired_metrics(a, b, config) -> dict:
  """Per-image PSNR, SSIM, LPIPS of `a` against `b` (`[N, H, W, 1]` in [-1, 1]): `{name: [N]}`."""
  from mrixai_jax import metrics  # pylint: disable=g-import-not-at-top
  metrics_cfg = config.metrics
  batch = int(metrics_cfg.batch_size)
  a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
  return {"psnr": _batched("PSNR", metrics.psnr, a, b, batch),
          "ssim": _batched("SSIM", metrics.ssim, a, b, batch),
          "lpips": _batched("LPIPS", lambda x, y: metrics.lpips(x, y, lin_source=metrics_cfg.lpips_lin_source), a, b,
                            batch)}


def set_distances(real, fake, config) -> tuple:
  """`({"fid", "fd_vgg"}: float | None, {name: error text})` between two image sets, as
  `config.metrics` enables them; a missing weight file leaves that one None with its reason."""
  from mrixai_jax.metrics import frechet  # pylint: disable=g-import-not-at-top
  metrics_cfg = config.metrics
  batch = int(metrics_cfg.batch_size)
  values, errs = {"fid": None, "fd_vgg": None}, {}
  if len(real) < 2 or len(fake) < 2:
    reason = "a Fréchet distance needs at least 2 images per set"
    return values, {name: reason for name, on in (("fid", metrics_cfg.fid), ("fd_vgg", metrics_cfg.fd_vgg)) if on}
  if metrics_cfg.fid:
    values["fid"], errs["fid"] = _set_distance("FID", lambda: frechet.fid(real, fake, batch_size=batch))
  if metrics_cfg.fd_vgg:
    values["fd_vgg"], errs["fd_vgg"] = _set_distance(
        "FD-VGG", lambda: frechet.fd_vgg(real, fake, batch_size=batch, layer=metrics_cfg.fd_vgg_layer))
  return values, {k: v for k, v in errs.items() if v}


def compute_table(samples, counterparts, labels, config) -> dict:
  """Table 1 metrics. samples/counterparts: [N, H, W, 1] in [-1, 1] (counterparts may be None);
  labels: [N, H, W] uint8 conditioning masks; config: the study config (uses `config.metrics`).

  Returns {"n", "psnr"|"ssim"|"lpips"|"dice": {"mean","sd"}, "fid", "fd_vgg" (float|None),
  "per_image": {name: [N] list}, "errors": {name: text}} and, with counterparts, "intensity"
  {tissue: {"sample_mean","real_mean","diff"}} and "air" (`intensity.air_statistics`).
  """
  from mrixai_jax.metrics import intensity, overlap, segmenter  # pylint: disable=g-import-not-at-top

  metrics_cfg = config.metrics
  samples = np.asarray(samples, np.float32)
  per_image, errs = {}, {}
  if counterparts is not None:
    counterparts = np.asarray(counterparts, np.float32)
    per_image.update(paired_metrics(samples, counterparts, config))
  masks = segmenter.segment_batch(samples, segmenter.params_from_config(metrics_cfg))
  per_image["dice"] = overlap.dice(masks, np.asarray(labels) > 0)
  table = {"n": int(len(samples))}
  for name in ("psnr", "ssim", "lpips", "dice"):
    table[name] = statistics.mean_sd(per_image.get(name, []))
  table["fid"] = table["fd_vgg"] = None
  if counterparts is not None:
    distances, errs = set_distances(counterparts, samples, config)
    table.update(distances)
    table["intensity"] = intensity.intensity_table(samples, counterparts, labels)
    table["air"] = intensity.air_statistics(samples, counterparts, float(metrics_cfg.air_threshold))
  table["per_image"] = {k: [float(x) for x in v] for k, v in per_image.items()}
  table["errors"] = errs
  return table


def quality_references(counterparts, patient_ids, slice_indices, config, workdir) -> dict:
  """Where the table's numbers stand (`metrics.references`): `{"shuffled_real": {"psnr","ssim","lpips":
  {"mean","sd"}}, "real_vs_real": {"fid","fd_vgg"}, "noise_oracle": {...} (phantom data only),
  "train_tissue_means": {tissue: mean}}`; the real training slices come from `workdir`'s training
  split (their tissue means minus the counterparts' are the intensity difference a perfect
  generator of the training distribution would show: patients differ in brightness)."""
  from mrixai_jax.data import pipeline  # pylint: disable=g-import-not-at-top
  from mrixai_jax.metrics import intensity, references  # pylint: disable=g-import-not-at-top

  seed = int(config.metrics.reference_seed)
  counterparts = np.asarray(counterparts, np.float32)
  partners = references.shuffled_pairs(patient_ids, slice_indices, seed)
  out = {"shuffled_real": {k: statistics.mean_sd(v) for k, v in
                           paired_metrics(counterparts[partners], counterparts, config).items()}}
  train = pipeline.load_split(config.data, "train", str(workdir))
  out["real_vs_real"], errs = set_distances(
      counterparts, references.real_training_slices(train["image"], len(counterparts), seed), config)
  out["train_tissue_means"] = intensity.tissue_means(train["image"], train["labels"])
  if errs:
    out["real_vs_real"]["errors"] = errs
  if config.data.name == "breast_phantom":
    oracle = references.noise_oracle(patient_ids, slice_indices, config.data, noise_seed=seed + 1)
    out["noise_oracle"] = {k: statistics.mean_sd(v) for k, v in paired_metrics(oracle, counterparts, config).items()}
  return out


def markdown(table: dict, source: str) -> str:
  """Table 1 as Markdown."""
  lines = [
      "# Image quality (Table 1)", "",
      f"{table['n']} samples from `{source}`. PSNR/SSIM/LPIPS: each sample vs its real counterpart, "
      "mean ± SD (sample SD over images); FID (InceptionV3 pool3) and FD-VGG (VGG16 features, "
      "spatial mean) between the sets; Dice: classical breast segmentation of each sample vs its "
      "conditioning mask (labels > 0).", "",
      *quality_tables.table_1(table, table["n"]),
  ]
  lines += quality_tables.reference_and_intensity_lines(table)
  for name, text in table.get("errors", {}).items():
    lines += ["", f"{name} not computed: {text}"]
  return "\n".join(lines) + "\n"


def load_samples(path) -> tuple:
  """(samples [N,H,W,1], counterparts [N,H,W,1] | None, labels [N,H,W]) with shape checks."""
  path = pathlib.Path(path)
  if not path.exists():
    raise errors.UserError(f"{path}: samples file not found (run the sampling stage first)")
  try:
    with np.load(path, allow_pickle=False) as f:
      arrays = {k: f[k] for k in ("samples", "labels", "counterparts") if k in f.files}
  except (OSError, ValueError) as e:
    raise errors.UserError(f"{path}: not a readable .npz file ({e})") from e
  for key in ("samples", "labels"):
    if key not in arrays:
      raise errors.UserError(f"{path}: missing array '{key}'")
  samples, labels = arrays["samples"], arrays["labels"]
  counterparts = arrays.get("counterparts")
  if samples.ndim != 4 or samples.shape[-1] != 1:
    raise errors.UserError(f"{path}: 'samples' must be [N, H, W, 1], got {samples.shape}")
  if labels.shape != samples.shape[:3]:
    raise errors.UserError(f"{path}: 'labels' must be {samples.shape[:3]}, got {labels.shape}")
  if counterparts is not None and counterparts.size == 0:
    counterparts = None
  if counterparts is not None and counterparts.shape != samples.shape:
    raise errors.UserError(f"{path}: 'counterparts' must be {samples.shape}, got {counterparts.shape}")
  for key, arr in (("samples", samples), ("counterparts", counterparts)):
    if arr is not None and not np.all(np.isfinite(arr)):
      raise errors.UserError(f"{path}: '{key}' contains non-finite values")
  return samples, counterparts, labels


def _counterpart_ids(path) -> tuple | None:
  """`(counterpart_patient_id [N], counterpart_slice_index [N])` of a samples file, None if absent."""
  with np.load(path, allow_pickle=False) as f:
    if "counterpart_patient_id" not in f.files or "counterpart_slice_index" not in f.files:
      return None
    return f["counterpart_patient_id"], f["counterpart_slice_index"]


def run(config, workdir) -> dict:
  """Evaluates `workdir/samples/samples.npz` (with `quality_references` when the samples have
  dataset counterparts); writes `workdir/eval/metrics.{json,md}`; returns the table."""
  workdir = pathlib.Path(workdir)
  path = workdir / workdir_lib.SAMPLES_FILE
  samples, counterparts, labels = load_samples(path)
  start = time.time()
  table = compute_table(samples, counterparts, labels, config)
  ids = _counterpart_ids(path) if counterparts is not None else None
  if ids is not None:
    table["quality_reference"] = quality_references(counterparts, *ids, config, workdir)
    for tissue, mean in table["quality_reference"].pop("train_tissue_means").items():
      row = table["intensity"][tissue]
      row["train_mean"] = mean
      row["train_diff"] = None if mean is None or row["real_mean"] is None else mean - row["real_mean"]
  table["seconds"] = time.time() - start
  out = workdir / workdir_lib.EVAL_SUBDIR
  atomic.write_json(out / "metrics.json", table)
  atomic.write_text(out / "metrics.md", markdown(table, str(path)))
  logging.info("evaluate: %d samples in %.1f s -> %s", table["n"], table["seconds"], out)
  return table


def _default_config():
  path = pathlib.Path(__file__).resolve().parents[1] / "configs" / "default.py"
  if not path.is_file():
    raise errors.UserError(f"{path} not found: pass --config=PATH")
  import importlib.util  # pylint: disable=g-import-not-at-top
  spec = importlib.util.spec_from_file_location("_mrixai_default_config", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def main() -> None:
  from absl import flags  # pylint: disable=g-import-not-at-top
  from ml_collections import config_flags  # pylint: disable=g-import-not-at-top
  from mrixai_jax import cli  # pylint: disable=g-import-not-at-top

  config_flag = config_flags.DEFINE_config_file(
      "config", None, "ml_collections config file (default: configs/default.py)", lock_config=True)
  workdir_flag = flags.DEFINE_string("workdir", None, "Directory holding samples/samples.npz.")
  flags.mark_flags_as_required(["workdir"])

  def _main(argv):
    del argv
    config = config_flag.value if config_flag.value is not None else _default_config()
    table = run(config, workdir_flag.value)
    print(markdown(table, str(pathlib.Path(workdir_flag.value) / workdir_lib.SAMPLES_FILE)), end="")
    return 0

  cli.run(_main)


if __name__ == "__main__":
  main()
