"""Markdown pieces of the image-quality table shared by `eval/metrics.md` and the study report:
number and mean ± SD formatting, the reference rows (chance and ceiling) and the per-tissue
intensity table (schemas: `evaluate.compute_table`, `evaluate.quality_references`)."""


def number(value, digits: int) -> str:
  return "n/a" if value is None else f"{value:.{digits}f}"


def mean_sd(stat: dict, digits: int) -> str:
  """`mean ± sd` of a `{"mean", "sd"}` statistic; "n/a" without a mean, the mean alone without an SD."""
  if not stat or stat.get("mean") is None:
    return "n/a"
  sd = "" if stat.get("sd") is None else f" ± {stat['sd']:.{digits}f}"
  return f"{stat['mean']:.{digits}f}{sd}"


def table_1(stats: dict, n=None) -> list:
  """Markdown lines of Table 1 from `psnr`, `ssim`, `lpips`, `dice` ({"mean", "sd"}) and `fid`, `fd_vgg`
  (float or None) in `stats`; with `n`, a first column with the number of samples."""
  n_head, n_rule, n_cell = ("| N ", "|---", f"| {n} ") if n is not None else ("", "", "")
  return [f"{n_head}| PSNR (dB) ↑ | SSIM ↑ | LPIPS ↓ | FID ↓ | FD-VGG ↓ | Dice ↑ |",
          f"{n_rule}|---|---|---|---|---|---|",
          f"{n_cell}| {mean_sd(stats['psnr'], 2)} | {mean_sd(stats['ssim'], 4)} | {mean_sd(stats['lpips'], 4)} "
          f"| {number(stats['fid'], 2)} | {number(stats['fd_vgg'], 2)} | {mean_sd(stats['dice'], 4)} |"]


def reference_and_intensity_lines(table: dict) -> list:
  """Markdown lines: the references table (when `table` has "quality_reference"), the per-tissue
  intensity table and the air noise line (when it has "intensity" / "air")."""
  lines = []
  refs = table.get("quality_reference") or {}
  rows = [("real vs another patient's real slice (chance)", refs.get("shuffled_real")),
          ("real re-acquired with fresh noise (ceiling, phantom)", refs.get("noise_oracle"))]
  if refs:
    lines += ["", "References, computed on the same real counterparts: a score reads between chance and ceiling.", "",
              "| reference | PSNR (dB) | SSIM | LPIPS | FID | FD-VGG |", "|---|---|---|---|---|---|"]
    lines += [f"| {name} | {mean_sd(r['psnr'], 2)} | {mean_sd(r['ssim'], 4)} | {mean_sd(r['lpips'], 4)} | | |"
              for name, r in rows if r]
    if "real_vs_real" in refs:
      rr = refs["real_vs_real"]
      lines.append(f"| real test slices vs as many real training slices | | | | {number(rr['fid'], 2)} "
                   f"| {number(rr['fd_vgg'], 2)} |")
  if table.get("intensity"):
    lines += ["", "Mean intensity per tissue of the conditioning mask (pixel values in [-1, 1]). The last column is "
                  "the training slices' mean minus the counterparts': what a perfect generator of the training "
                  "distribution would show, since the mask does not tell a patient's brightness.", "",
              "| tissue | samples | real counterparts | difference | training slices − counterparts |",
              "|---|---|---|---|---|"]
    lines += [f"| {tissue} | {number(v['sample_mean'], 3)} | {number(v['real_mean'], 3)} | {number(v['diff'], 3)} "
              f"| {number(v.get('train_diff'), 3)} |" for tissue, v in table["intensity"].items()]
  air = table.get("air") or {}
  if air.get("pixels"):
    lines += ["", f"Air (real pixels below the threshold, {air['pixels']} of them): SD {air['sample_sd']:.3f} in the "
                  f"samples vs {air['real_sd']:.3f} in the real slices ({air['sd_ratio']:.2f}x)."]
  return lines
