"""Procedural breast MRI phantom: axial T1-weighted prone slices (anterior up) with label maps.

Each phantom *patient* has its own anatomy (two breasts of random size, shape and asymmetry,
ribcage, pectoral muscle, fibroglandular density, coil bias, noise level); its slices differ in
breast cross-section and in texture. Slice ``i`` of ``generate(num, size, seed)`` depends only on
``(seed, i)`` and, through the pixel grid, on ``size``: smooth structures are synthesised from a
fixed set of low-frequency Fourier coefficients, so one seed shows the same anatomy at every size
and a longer run extends a shorter one.

Geometry is in normalised coordinates ``(x, y)`` in [-1, 1] (x to the image right, y down), one
unit ≈ 175 mm for a 350 mm field of view. Label map: 0 background / outside breast, 1 breast fat
(and skin), 2 fibroglandular tissue (FGT), 3 vessels.

CLI: ``python -m mrixai_jax.data.phantom --montage docs/images/phantom_montage.png``.
"""

import argparse
import time

import numpy as np
from scipy import ndimage

SLICES_PER_PATIENT = 10  # default number of consecutive slices that share one anatomy
CHUNK = 32  # slices computed together (memory bound only; results do not depend on it)
MAX_FREQ = 40  # highest spatial frequency (cycles per unit) of the smooth random fields
SKIN_THICKNESS = 0.012  # units (≈ 2 mm)
RETROMAMMARY_FAT = 0.035  # units of fat kept between FGT and the pectoral muscle
SUBCUTANEOUS_MARGIN = 0.06  # FGT stays this far inside the breast outline (superellipse radius)
VESSEL_WIDTH = 0.008  # units (≈ 1.4 mm), at least one pixel
VESSEL_GATE = 0.65  # quantile of a slow field above which vessel segments are kept
HEART_DEPTH = 0.38  # units from the anterior chest wall to the heart's centre (plus muscle)
HEART_RY = 0.36
FGT_CORE = (0.8, 0.7, 0.45)  # half-width, half-height (breast fractions) and height of its centre
PARTIAL_VOLUME_PX = 0.6  # Gaussian sigma (pixels) of the point spread function
CLIP_PERCENTILE = 99.5  # of breast pixels -> +1

# Relative signal of each tissue in the T1-weighted image (fat = 1 before the per-patient draws).
TISSUE_SIGNAL = {"skin": 0.55, "muscle": 0.25, "lung": 0.05, "mediastinum": 0.4, "vessel": 0.55}


def _patient_params(seed: int, patient: int) -> dict:
  """Anatomy, contrast and acquisition draws shared by all slices of one phantom patient."""
  rng = np.random.default_rng([seed, 0, patient])
  p = {}
  p["scale"] = rng.uniform(0.92, 1.06)
  p["shift_x"] = rng.normal(0.0, 0.03)
  p["rib_rx"] = rng.uniform(1.15, 1.4)
  p["rib_ry"] = rng.uniform(0.75, 0.95)
  p["rib_top"] = rng.uniform(0.12, 0.35)  # y of the anterior chest wall at the midline
  p["fat_layer"] = rng.uniform(0.03, 0.07)  # subcutaneous fat over the thorax
  p["muscle"] = rng.uniform(0.05, 0.09)
  p["heart_rx"] = rng.uniform(0.352, 0.512)
  width = rng.uniform(0.33, 0.45)
  height = rng.uniform(0.3, 0.68)
  asym = 1.0 + rng.normal(0.0, 0.07, size=(2, 2))
  p["breast_cx"] = np.array([-1.0, 1.0]) * rng.uniform(0.4, 0.5, size=2)
  p["breast_w"] = width * asym[:, 0]
  p["breast_h"] = height * asym[:, 1]
  p["breast_p"] = rng.uniform(1.8, 2.6, size=2)  # superellipse exponent
  p["breast_tilt"] = np.array([-1.0, 1.0]) * rng.uniform(0.0, 0.3, size=2)  # lateral sag
  p["density"] = rng.uniform(0.03, 0.6)  # FGT share of the breast core (fatty -> dense)
  p["fat"] = rng.uniform(0.85, 1.0)
  p["fgt"] = rng.uniform(0.28, 0.45)
  p["muscle_signal"] = TISSUE_SIGNAL["muscle"] * rng.uniform(0.8, 1.2)
  p["bias"] = rng.normal(0.0, 0.15, size=5)  # x, y, x², y², xy of log bias
  p["bias_ap"] = rng.uniform(0.1, 0.4)  # signal falls off away from the breast coil (posterior)
  p["noise"] = rng.uniform(0.012, 0.03)
  return p


def _slice_position(slice_index: int, slices_per_patient: int) -> float:
  """Cranio-caudal position in [-0.9, 0.9] of a slice within its patient's stack."""
  if slices_per_patient == 1:
    return 0.0
  return -0.9 + 1.8 * slice_index / (slices_per_patient - 1)


def _stack(params: list, key: str) -> np.ndarray:
  """`[n, 1, 1]` (scalars) or `[n, k, 1, 1]` (vectors) array of one parameter over the chunk."""
  values = np.asarray([p[key] for p in params], np.float32)
  return values.reshape(values.shape + (1, 1))


def _fourier_coefficients(rng: np.random.Generator, count: int) -> np.ndarray:
  """`[count, 2F+1, F+1]` complex white coefficients for frequencies |k| <= F = MAX_FREQ."""
  shape = (count, 2 * MAX_FREQ + 1, MAX_FREQ + 1)
  return (rng.standard_normal(shape, np.float32) + 1j * rng.standard_normal(shape, np.float32))


def _random_field(coeffs: np.ndarray, size: int, spectrum) -> np.ndarray:
  """Real fields `[n, size, size]` (zero mean, unit sd per image) from coefficients `[n, 2F+1, F+1]`.

  `spectrum(ky, kx)` weights frequencies given in cycles per unit of normalised length.
  """
  f = min(MAX_FREQ, size // 4 - 1)
  k = np.arange(-f, f + 1, dtype=np.float32)[:, None] / 2.0  # cycles per unit (image = 2 units)
  kx = np.arange(0, f + 1, dtype=np.float32)[None, :] / 2.0
  centre = coeffs[:, MAX_FREQ - f:MAX_FREQ + f + 1, :f + 1] * spectrum(k, kx)
  full = np.zeros((len(coeffs), size, size // 2 + 1), np.complex64)
  rows = np.arange(-f, f + 1) % size
  full[:, rows, :f + 1] = centre
  field = np.fft.irfft2(full, s=(size, size), axes=(1, 2)).astype(np.float32)
  field -= field.mean(axis=(1, 2), keepdims=True)
  return field / (field.std(axis=(1, 2), keepdims=True) + 1e-12)


def _band(low: float, high: float, aspect: float = 1.0):
  """Smooth band-pass spectrum between `low` and `high` cycles/unit; `aspect` > 1 stretches
  structures along y (ducts run antero-posteriorly)."""
  def spectrum(ky, kx):
    k = np.sqrt((ky * aspect) ** 2 + kx ** 2)
    return np.exp(-0.5 * (k / high) ** 2) * (1.0 - np.exp(-0.5 * (k / low) ** 2))
  return spectrum


def _ellipse(x, y, cx, cy, rx, ry):
  """Normalised radius `((x-cx)/rx)² + ((y-cy)/ry)²` (inside where < 1)."""
  return ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2


def _breast_radius(x, y, prm, shrink):
  """Superellipse radius `[n, 2, S, S]` of both breasts (< 1 inside) and the height fraction `v`.

  Each breast grows upward from the chest wall at its centre; `shrink` (units) pulls the outline in.
  """
  cx, w, h = prm["breast_cx"], prm["breast_w"], prm["breast_h"]
  pw = prm["breast_p"]
  rib_cy, rx, ry = prm["rib_cy"][:, None], prm["rib_rx"][:, None], prm["rib_ry"][:, None]
  base = rib_cy - ry * np.sqrt(np.clip(1.0 - (cx / rx) ** 2, 0.05, 1.0))
  dy = base - y[:, None]
  u = (x[:, None] - cx - prm["breast_tilt"] * np.clip(dy, 0, None)) / (w - shrink)
  v = dy / (h - shrink)
  return (np.abs(u) ** pw + np.abs(v) ** pw) ** (1.0 / pw), u, v


def _anatomy(x, y, prm) -> dict:
  """Tissue masks `[n, S, S]` bool, plus the breast coordinates used to place FGT."""
  rib_cy, rx, ry = prm["rib_cy"], prm["rib_rx"], prm["rib_ry"]
  layer = prm["fat_layer"]  # subcutaneous fat over the thorax
  m = {}
  m["ribcage"] = _ellipse(x, y, 0, rib_cy, rx, ry) < 1  # pectoral muscle and everything inside
  m["thorax"] = _ellipse(x, y, 0, rib_cy, rx - prm["muscle"], ry - prm["muscle"]) < 1
  torso = _ellipse(x, y, 0, rib_cy, rx + layer, ry + layer) < 1
  torso_in = _ellipse(x, y, 0, rib_cy, rx + layer - SKIN_THICKNESS, ry + layer - SKIN_THICKNESS) < 1
  m["retromammary"] = _ellipse(x, y, 0, rib_cy, rx + RETROMAMMARY_FAT, ry + RETROMAMMARY_FAT) < 1
  heart_cy = prm["rib_top"] + prm["muscle"] + HEART_DEPTH
  m["heart"] = (_ellipse(x, y, 0, heart_cy, prm["heart_rx"], HEART_RY) < 1) & m["thorax"]
  radius, u, v = _breast_radius(x, y, prm, 0.0)
  radius_in, _, _ = _breast_radius(x, y, prm, SKIN_THICKNESS)
  breast_shape = (radius < 1).any(axis=1)
  m["body"] = torso | breast_shape
  m["skin"] = m["body"] & ~(torso_in | (radius_in < 1).any(axis=1))
  m["breast"] = breast_shape & ~m["ribcage"]
  m["fgt_allowed"] = m["breast"] & ~m["retromammary"] & (radius < 1 - SUBCUTANEOUS_MARGIN).any(axis=1)
  # Where FGT concentrates: behind the nipple, clear of skin and chest wall (max over both breasts).
  m["fgt_core"] = np.clip(1.0 - ((u / FGT_CORE[0]) ** 2 + ((v - FGT_CORE[2]) / FGT_CORE[1]) ** 2),
                          0, None).max(axis=1)
  return m


def _fgt(masks: dict, blobs, ridges, density) -> np.ndarray:
  """FGT `[n, S, S]`: the top `density` share of the allowed breast by a core-weighted branching
  texture score."""
  n = len(blobs)
  allowed = masks["fgt_allowed"]
  score = masks["fgt_core"] * (1.0 + 0.45 * blobs) + 0.35 * (1.0 - np.abs(ridges))
  ranked = -np.sort(-np.where(allowed, score, -np.inf).reshape(n, -1), axis=1)
  count = allowed.reshape(n, -1).sum(axis=1)
  k = np.clip((density.ravel() * count).astype(int), 0, ranked.shape[1] - 1)
  threshold = np.where(count > 0, ranked[np.arange(n), k], np.inf).reshape(n, 1, 1)
  return allowed & (score > threshold)


def _vessels(masks: dict, field, slow, size: int) -> np.ndarray:
  """Vessels `[n, S, S]`: constant-width level lines of `field`, kept where `slow` is high."""
  gy, gx = np.gradient(field, axis=(1, 2))
  width_px = max(1.0, VESSEL_WIDTH * size / 2.0)
  lines = np.abs(field) < 0.5 * width_px * np.hypot(gy, gx)
  gate = slow > np.quantile(slow, VESSEL_GATE, axis=(1, 2), keepdims=True)
  return lines & gate & masks["breast"] & ~masks["skin"]


def _signal(masks: dict, fgt, vessels, prm, blobs, ridges, slow) -> np.ndarray:
  """Noise-free T1-weighted signal `[n, S, S]` after the point spread function."""
  fat = prm["fat"]
  signal = np.where(masks["body"], fat * (1.0 + 0.05 * blobs + 0.04 * slow), 0.0)
  signal = np.where(masks["ribcage"], prm["muscle_signal"] * fat, signal)
  signal = np.where(masks["thorax"], TISSUE_SIGNAL["lung"] * fat, signal)
  signal = np.where(masks["heart"], TISSUE_SIGNAL["mediastinum"] * fat * (1 + 0.1 * slow), signal)
  signal = np.where(masks["skin"], TISSUE_SIGNAL["skin"] * fat, signal)
  signal = np.where(fgt, prm["fgt"] * fat * (1.0 + 0.08 * ridges), signal)
  signal = np.where(vessels, TISSUE_SIGNAL["vessel"] * fat, signal)
  return ndimage.gaussian_filter(signal.astype(np.float32), (0, PARTIAL_VOLUME_PX, PARTIAL_VOLUME_PX))


def _acquire(signal, x, y, prm, noise_rngs: list) -> np.ndarray:
  """Magnitude image: smooth multiplicative coil bias, then Rician noise drawn from `noise_rngs`."""
  c = prm["bias"][:, :, 0, 0, None, None]
  log_bias = (c[:, 0] * x + c[:, 1] * y + c[:, 2] * x ** 2 + c[:, 3] * y ** 2 + c[:, 4] * x * y
              - prm["bias_ap"] * y)
  signal = signal * np.exp(log_bias)
  size = signal.shape[-1]
  noise = np.stack([r.standard_normal((2, size, size), np.float32) for r in noise_rngs])
  sigma = prm["noise"]
  return np.hypot(signal + sigma * noise[:, 0], sigma * noise[:, 1]).astype(np.float32)


def _render_chunk(params: list, positions: np.ndarray, slice_rngs: list, size: int, noise_rngs=None) -> tuple:
  """Images `[n, S, S]` (raw magnitude) and labels `[n, S, S]` uint8 for one chunk of slices; the pixel
  noise continues `slice_rngs` unless `noise_rngs` are given."""
  n = len(params)
  prm = {key: _stack(params, key) for key in params[0]}
  z = positions.reshape(n, 1, 1).astype(np.float32)
  section = 0.55 + 0.45 * np.sqrt(1.0 - z ** 2)  # breast cross-section shrinks off-centre
  prm["breast_w"] = prm["breast_w"] * np.sqrt(section)[:, None]
  prm["breast_h"] = prm["breast_h"] * section[:, None]
  prm["rib_cy"] = prm["rib_top"] + prm["rib_ry"]
  grid = (np.arange(size, dtype=np.float32) + 0.5) / size * 2.0 - 1.0
  x = (grid[None, None, :] - prm["shift_x"]) / prm["scale"]
  y = grid[None, :, None] / prm["scale"]

  # Coefficients first (size-independent draws), pixel noise last (in _acquire).
  coeffs = np.stack([_fourier_coefficients(r, 4) for r in slice_rngs])  # [n, 4, 2F+1, F+1]
  ridges = _random_field(coeffs[:, 0], size, _band(1.5, 6.0, aspect=0.55))
  blobs = _random_field(coeffs[:, 1], size, _band(0.5, 3.0))
  vessel_field = _random_field(coeffs[:, 2], size, _band(1.0, 2.5))
  slow = _random_field(coeffs[:, 3], size, _band(0.2, 1.0))

  masks = _anatomy(x, y, prm)
  fgt = _fgt(masks, blobs, ridges, prm["density"])
  vessels = _vessels(masks, vessel_field, slow, size)
  labels = np.zeros((n, size, size), np.uint8)
  labels[masks["breast"]] = 1
  labels[fgt] = 2
  labels[vessels] = 3
  image = _acquire(_signal(masks, fgt, vessels, prm, blobs, ridges, slow), x, y, prm,
                   slice_rngs if noise_rngs is None else noise_rngs)
  return image, labels


def _to_unit_range(image: np.ndarray, labels: np.ndarray) -> np.ndarray:
  """Maps raw magnitudes `[n, S, S]` to [-1, 1]: 0 -> -1, CLIP_PERCENTILE of breast pixels -> +1."""
  from mrixai_jax.data import preprocess  # local: preprocess imports nothing from here
  high = preprocess.masked_percentile(image, labels > 0, CLIP_PERCENTILE)
  return preprocess.scale_to_unit_range(image, np.zeros_like(high), high)


def generate(num: int, size: int, seed: int, slices_per_patient: int = SLICES_PER_PATIENT,
             start: int = 0, noise_seed=None) -> dict:
  """`num` phantom slices of `size`² pixels from `seed`: slices `start .. start + num - 1`.

  `noise_seed`: re-acquire the same slices (same anatomy, texture and coil bias) with pixel noise
  drawn from this seed instead (the "noise oracle": what a perfect generator could at best match).

  Returns numpy arrays: ``image [N,S,S,1]`` float32 in [-1, 1], ``labels [N,S,S]`` uint8
  (0 background, 1 fat, 2 FGT, 3 vessels), ``patient_id [N]`` str (``phantom_XXXX``; each patient
  has `slices_per_patient` consecutive slices) and ``slice_index [N]`` int32 within the patient.
  """
  if num < 0 or start < 0 or size < 16 or slices_per_patient < 1:
    raise ValueError(f"need num >= 0, start >= 0, size >= 16, slices_per_patient >= 1; got {num}, "
                     f"{start}, {size}, {slices_per_patient}")
  rows_all = np.arange(start, start + num)
  patients = rows_all // slices_per_patient
  slice_index = (rows_all % slices_per_patient).astype(np.int32)
  cache = {}
  images, labels = [], []
  for first in range(0, num, CHUNK):
    rows = range(first, min(num, first + CHUNK))
    params = []
    for i in rows:
      if patients[i] not in cache:
        cache = {patients[i]: _patient_params(seed, int(patients[i]))}
      params.append(cache[patients[i]])
    positions = np.array([_slice_position(int(slice_index[i]), slices_per_patient) for i in rows])
    rngs = [np.random.default_rng([seed, 1, int(rows_all[i])]) for i in rows]
    noise_rngs = None if noise_seed is None else [np.random.default_rng([noise_seed, 2, int(rows_all[i])]) for i in rows]
    raw, lab = _render_chunk(params, positions, rngs, size, noise_rngs)
    images.append(_to_unit_range(raw, lab))
    labels.append(lab)
  image = np.concatenate(images) if images else np.zeros((0, size, size), np.float32)
  label = np.concatenate(labels) if labels else np.zeros((0, size, size), np.uint8)
  return {"image": image[..., None], "labels": label,
          "patient_id": np.array([f"phantom_{p:04d}" for p in patients], dtype=str),
          "slice_index": slice_index}


def save_montage(path: str, num: int = 16, size: int = 256, seed: int = 0) -> None:
  """Writes a PNG grid of `num` phantoms: image, and image with the label map overlaid."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  from matplotlib import colors

  data = generate(num, size, seed, slices_per_patient=1)
  cols = 4
  rows = -(-num // cols)
  fig, axes = plt.subplots(rows, 2 * cols, figsize=(4 * cols, 2.1 * rows), squeeze=False)
  palette = colors.ListedColormap([(0, 0, 0, 0), (1.0, 0.85, 0.1, 0.35), (0.1, 0.9, 0.2, 0.6),
                                   (1.0, 0.1, 0.1, 0.9)])
  for ax in axes.ravel():
    ax.axis("off")
  for i in range(num):
    img = data["image"][i, ..., 0]
    left, right = axes[i // cols, 2 * (i % cols)], axes[i // cols, 2 * (i % cols) + 1]
    left.imshow(img, cmap="gray", vmin=-1, vmax=1)
    right.imshow(img, cmap="gray", vmin=-1, vmax=1)
    right.imshow(data["labels"][i], cmap=palette, vmin=-0.5, vmax=3.5, interpolation="nearest")
    left.set_title(data["patient_id"][i], fontsize=7)
  handles = [matplotlib.patches.Patch(color=palette(k), label=name)
             for k, name in ((1, "fat"), (2, "FGT"), (3, "vessels"))]
  fig.legend(handles=handles, loc="lower center", ncol=3, fontsize=8)
  fig.suptitle(f"breast phantom, seed {seed}, {size}²: image | labels", fontsize=10)
  fig.tight_layout(rect=(0, 0.03, 1, 0.97))
  _save_figure_atomic(fig, path)
  plt.close(fig)


def _save_figure_atomic(fig, path: str) -> None:
  import os
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  tmp = os.path.join(directory, f".{os.path.basename(path)}.tmp")
  fig.savefig(tmp, dpi=110, format="png")
  os.replace(tmp, path)


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--montage", help="write a 16-phantom PNG montage to this path")
  parser.add_argument("--time", type=int, metavar="N", help="time generating N slices")
  parser.add_argument("--size", type=int, default=256)
  parser.add_argument("--seed", type=int, default=0)
  args = parser.parse_args(argv)
  if args.montage:
    save_montage(args.montage, size=args.size, seed=args.seed)
    print(f"wrote {args.montage}")
  if args.time:
    start, cpu = time.perf_counter(), time.process_time()
    generate(args.time, args.size, args.seed)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    print(f"{args.time} slices of {args.size}²: {seconds:.1f} s wall, {cpu:.1f} s CPU "
          f"({args.time / seconds:.0f} slices/s)")


if __name__ == "__main__":
  main()
