"""PNG figures of sampling runs: the sample grid (sample | mask | real counterpart) and the
denoising-trajectory figure (paper Fig. 3: x_t, |ε̂| and x̂0 at the recorded steps).

matplotlib is imported lazily (Agg backend); every file is written atomically.
"""

import numpy as np

from mrixai_jax import atomic

# Label map colours: 0 background black, 1 fat, 2 FGT, 3 vessels.
LABEL_COLORS = ("#000000", "#d8c070", "#d04040", "#4070d0")


def pyplot():
  """matplotlib.pyplot with the Agg backend (imported on first use)."""
  import matplotlib  # pylint: disable=g-import-not-at-top

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  return plt


def _show(ax, image, **kwargs):
  ax.imshow(image, interpolation="nearest", **kwargs)
  ax.set_xticks([])
  ax.set_yticks([])


def sample_grid(path, samples, labels, counterparts=None, row_titles=None, max_rows: int = 16) -> None:
  """One row per image: generated sample | conditioning mask | real counterpart (when given).

  samples, counterparts: `[N, H, W, 1]` in [-1, 1]; labels: `[N, H, W]` ints 0..3;
  row_titles: N strings (e.g. the counterpart's patient/slice). At most `max_rows` rows.
  """
  from matplotlib.colors import ListedColormap  # pylint: disable=g-import-not-at-top

  plt = pyplot()
  n = min(len(samples), max_rows)
  columns = [("sample", samples, "gray"), ("mask", labels, ListedColormap(LABEL_COLORS))]
  if counterparts is not None:
    columns.append(("real counterpart", counterparts, "gray"))
  fig, axes = plt.subplots(n, len(columns), figsize=(2.0 * len(columns), 2.0 * n + 0.4), squeeze=False)
  for row in range(n):
    for col, (title, images, cmap) in enumerate(columns):
      image = np.asarray(images[row])
      ax = axes[row, col]
      if title == "mask":
        _show(ax, image, cmap=cmap, vmin=0, vmax=len(LABEL_COLORS) - 1)
      else:
        _show(ax, image[..., 0], cmap=cmap, vmin=-1, vmax=1)
      if row == 0:
        ax.set_title(title, fontsize=9)
      if col == 0 and row_titles is not None:
        ax.set_ylabel(str(row_titles[row]), fontsize=7)
  fig.tight_layout()
  atomic.save_figure(fig, path)


def trajectory_figure(path, trajectory_xt, trajectory_eps_norm, timesteps, trajectory_x0=None,
                      max_samples: int = 4) -> None:
  """Rows: for each sample, x_t, |ε̂| (and x̂0 when given); columns: the recorded steps (t labels).

  trajectory_*: `[N, K, H, W, 1]`; timesteps: `[K]` diffusion timestep of each column. x_t and x̂0
  are shown on a fixed [-1, 1] (x̂0) / symmetric robust (x_t) grey scale; |ε̂| uses one colour scale
  per sample (0 to its 99th percentile) so its decay along the trajectory is visible.
  """
  plt = pyplot()
  n = min(len(trajectory_xt), max_samples)
  kinds = [("x_t", trajectory_xt), ("|ε̂|", trajectory_eps_norm)]
  if trajectory_x0 is not None:
    kinds.append(("x̂0", trajectory_x0))
  steps = len(timesteps)
  fig, axes = plt.subplots(n * len(kinds), steps, figsize=(1.6 * steps + 0.6, 1.6 * n * len(kinds) + 0.4),
                           squeeze=False)
  for i in range(n):
    eps_max = float(np.percentile(np.asarray(trajectory_eps_norm[i]), 99)) or 1.0
    for r, (name, maps) in enumerate(kinds):
      row = i * len(kinds) + r
      for k in range(steps):
        image = np.asarray(maps[i, k, ..., 0])
        if name == "|ε̂|":
          _show(axes[row, k], image, cmap="magma", vmin=0, vmax=eps_max)
        elif name == "x_t":
          lim = max(1.0, float(np.percentile(np.abs(image), 99)))
          _show(axes[row, k], image, cmap="gray", vmin=-lim, vmax=lim)
        else:
          _show(axes[row, k], image, cmap="gray", vmin=-1, vmax=1)
        if row == 0:
          axes[row, k].set_title(f"t = {int(timesteps[k])}", fontsize=8)
        if k == 0:
          axes[row, k].set_ylabel(f"#{i} {name}", fontsize=8)
  fig.tight_layout()
  atomic.save_figure(fig, path)
