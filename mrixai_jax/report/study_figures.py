"""Figures of the study report (PNG): faithfulness bars with CIs (paper Fig. 4), F against the window
size, NIS per prototype per method (Fig. 5), and prototype emergence along the denoising trajectory."""

import numpy as np

from mrixai_jax import atomic
from mrixai_jax.report import figures

TISSUE_NAMES = {1: "fat", 2: "FGT", 3: "vessels"}
TISSUE_COLORS = {1: "#e0b040", 2: "#c04040", 3: "#4060c0"}


def _tissue_legend(plt, fig) -> None:
  """Figure legend of the prototypes' tissue colours (grey: prototype without a source)."""
  handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in TISSUE_COLORS.values()]
  fig.legend(handles, list(TISSUE_NAMES.values()), loc="upper right", fontsize=8)


def faithfulness_bars(summary: dict, path) -> None:
  """Bars per head: F of the samples and of their real counterparts (where present) with 95% CIs
  (two-level bootstrap over seeds and patients), and the null of tissue-matched random prototypes.

  summary: `{head: {"mean", "ci95": [lo, hi], "real": {"mean", "ci95"} | None, "null": {"mean",
  "quantiles95"}}}` (`aggregate.head_summary`).
  """
  plt = figures.pyplot()
  heads = list(summary)
  x = np.arange(len(heads))
  bars = [("faithfulness F, samples (95% CI)", "#3070b0", [summary[h] for h in heads])]
  if all(summary[h].get("real") for h in heads):
    bars.append(("F, real counterparts (95% CI)", "#70a040", [summary[h]["real"] for h in heads]))
  width = 0.8 / (len(bars) + 1)
  fig, ax = plt.subplots(figsize=(1.8 * len(heads) + 2, 3.4))
  for i, (label, color, stats) in enumerate(bars):
    means = np.array([st["mean"] for st in stats])
    ci = np.array([st["ci95"] for st in stats])
    ax.bar(x + (i - len(bars) / 2) * width, means, width, yerr=[means - ci[:, 0], ci[:, 1] - means], capsize=4,
           color=color, label=label)
  null = [summary[h]["null"] for h in heads]
  means, spread = np.array([n["mean"] for n in null]), np.array([n["quantiles95"] for n in null])
  ax.bar(x + len(bars) / 2 * width, means, width, yerr=[means - spread[:, 0], spread[:, 1] - means], capsize=4,
         color="#bbbbbb", label="random prototypes, same tissue (null, central 95%)")
  ax.axhline(0, color="black", lw=0.8)
  ax.set_xticks(x, [h.upper() if h != "protopool" else "ProtoPool" for h in heads])
  ax.set_ylabel("F = Σ NIS·ρ")
  ax.set_title("Faithfulness per method")
  ax.legend(fontsize=8, loc="best")
  atomic.save_figure(fig, path)


def nis_per_prototype(nis_by_head: dict, prototype_class_by_head: dict, path) -> None:
  """Mean NIS of each prototype over the explained images, one panel per head, coloured by tissue.

  nis_by_head: `{head: [N, P]}`; prototype_class_by_head: `{head: [P]}` label-map class per prototype.
  """
  plt = figures.pyplot()
  heads = list(nis_by_head)
  fig, axes = plt.subplots(1, len(heads), figsize=(4.2 * len(heads), 3.2), squeeze=False)
  for ax, head in zip(axes[0], heads):
    nis = np.asarray(nis_by_head[head])
    classes = np.asarray(prototype_class_by_head[head])
    ax.bar(np.arange(nis.shape[1]), nis.mean(0), yerr=nis.std(0), capsize=2,
           color=[TISSUE_COLORS.get(int(c), "#888888") for c in classes])
    ax.set_title(head)
    ax.set_xlabel("prototype")
    ax.set_ylabel("mean NIS")
  _tissue_legend(plt, fig)
  atomic.save_figure(fig, path)


def faithfulness_by_window(summary: dict, path) -> None:
  """F(L) per head with 95% CIs against the window size L (log scale), the headline L marked.

  summary: `{head: {"by_window": {"<L>": {"mean", "ci95"}}, "window"}}` (`aggregate.head_summary`).
  """
  plt = figures.pyplot()
  fig, ax = plt.subplots(figsize=(4.6, 3.4))
  for i, (head, f) in enumerate(summary.items()):
    sizes = np.array([int(size) for size in f["by_window"]], np.float64)
    means = np.array([v["mean"] for v in f["by_window"].values()])
    ci = np.array([v["ci95"] for v in f["by_window"].values()])
    shift = 1.0 + 0.04 * (i - (len(summary) - 1) / 2)  # side by side on the log axis
    ax.errorbar(sizes * shift, means, yerr=[means - ci[:, 0], ci[:, 1] - means], marker="o", capsize=3, label=head)
  ax.axvline(next(iter(summary.values()))["window"], color="#888888", ls="--", lw=0.8, label="headline L")
  ax.axhline(0, color="black", lw=0.8)
  ax.set_xscale("log", base=2)
  ax.set_xticks(sizes, [str(int(v)) for v in sizes])
  ax.set_xlabel("window L (px)")
  ax.set_ylabel("F = Σ NIS·ρ")
  ax.set_title("Faithfulness against the window size")
  ax.legend(fontsize=8, loc="best")
  atomic.save_figure(fig, path)


def emergence_curves(emergence_by_head: dict, steps, prototype_class_by_head: dict, summary: dict, path) -> None:
  """Top row: mean NIS of x̂0 per prototype at each captured denoising step, one panel per head;
  bottom row: mean F of x̂0 with the half-rise step and its 95% CI (`summary[head]["emergence"]`).

  emergence_by_head: `{head: [N, K, P]}`; steps: `[K]` sampler step indices (0 = first, noisiest).
  """
  plt = figures.pyplot()
  heads = list(emergence_by_head)
  steps = np.asarray(steps)
  fig, axes = plt.subplots(2, len(heads), figsize=(4.2 * len(heads), 5.8), squeeze=False)
  for ax, head in zip(axes[0], heads):
    curves = np.asarray(emergence_by_head[head]).mean(0)  # [K, P]
    for j, cls in enumerate(np.asarray(prototype_class_by_head[head])):
      ax.plot(steps, curves[:, j], color=TISSUE_COLORS.get(int(cls), "#888888"), lw=1.2, alpha=0.8)
    ax.set_title(head)
    ax.set_ylabel("mean NIS of x̂0")
  for ax, head in zip(axes[1], heads):
    emergence = summary[head]["emergence"]
    ax.plot(emergence["steps"], emergence["curve"], marker="o", color="#3070b0")
    if emergence["value"] is not None:
      ax.axvline(emergence["value"], color="#d05020", lw=1.0, label="half of the final F")
      if emergence["ci95"] is not None:
        ax.axvspan(*emergence["ci95"], color="#d05020", alpha=0.15, label="95% CI")
      ax.legend(fontsize=7, loc="lower right")
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xlabel("sampler step (→ less noise)")
    ax.set_ylabel("mean F of x̂0")
  _tissue_legend(plt, fig)
  atomic.save_figure(fig, path)


def intensity_histograms(samples, counterparts, labels, path, bins: int = 60) -> None:
  """Per-tissue pixel-value histograms of the samples and their real counterparts, one panel per
  tissue of the conditioning mask (background, fat, FGT, vessels); densities, values in [-1, 1].

  samples, counterparts: `[N, H, W, 1]`; labels: `[N, H, W]` label map.
  """
  from mrixai_jax.metrics.intensity import TISSUES  # pylint: disable=g-import-not-at-top

  plt = figures.pyplot()
  fake, real, labels = np.asarray(samples)[..., 0], np.asarray(counterparts)[..., 0], np.asarray(labels)
  edges = np.linspace(-1.0, 1.0, bins + 1)
  fig, axes = plt.subplots(1, len(TISSUES), figsize=(3.4 * len(TISSUES), 2.8), squeeze=False)
  for ax, (name, value) in zip(axes[0], TISSUES.items()):
    inside = labels == value
    for pixels, colour, label in ((real[inside], "#444444", "real"), (fake[inside], "#d05020", "samples")):
      if pixels.size:
        ax.hist(pixels, bins=edges, density=True, histtype="step", lw=1.4, color=colour,
                label=f"{label} (mean {pixels.mean():+.2f})")
    ax.set_title(name)
    ax.set_xlabel("pixel value")
    ax.legend(fontsize=7, loc="upper left")
  axes[0][0].set_ylabel("density")
  atomic.save_figure(fig, path)
