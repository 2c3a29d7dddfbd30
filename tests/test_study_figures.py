"""Report figures are written as valid PNGs from small random inputs."""

import numpy as np
from PIL import Image

from mrixai_jax.report import study_figures


def _is_png(path):
  with Image.open(path) as image:
    return image.format == "PNG" and min(image.size) > 50


def test_figures_are_written_as_png(tmp_path):
  rng = np.random.default_rng()
  heads = ("ppnet", "eppnet", "protopool")
  emerging = {"value": 12.5, "ci95": [5.0, 20.0], "steps": [0, 10, 20, 49], "curve": [0.0, 0.1, 0.25, 0.3]}
  summary = {h: {"mean": 0.3, "ci95": [0.2, 0.4], "null": {"mean": 0.05, "quantiles95": [-0.1, 0.2]},
                 "real": {"mean": 0.25, "ci95": [0.1, 0.3]}, "window": 4, "emergence": emerging,
                 "by_window": {str(size): {"mean": 0.1 * k, "ci95": [0.1 * k - 0.05, 0.1 * k + 0.05]}
                               for k, size in enumerate((2, 4, 8, 16))}} for h in heads}
  summary["protopool"]["emergence"] = dict(emerging, value=None, ci95=None)  # final F <= 0: no half-rise
  study_figures.faithfulness_bars(summary, tmp_path / "f4.png")
  study_figures.faithfulness_by_window(summary, tmp_path / "windows.png")
  nis = {h: rng.dirichlet(np.ones(6), size=5) for h in heads}
  classes = {h: np.repeat([1, 2, 3], 2) for h in heads}
  study_figures.nis_per_prototype(nis, classes, tmp_path / "f5.png")
  emergence = {h: rng.dirichlet(np.ones(6), size=(5, 4)) for h in heads}
  study_figures.emergence_curves(emergence, [0, 10, 20, 49], classes, summary, tmp_path / "em.png")
  names = ["em.png", "f4.png", "f5.png", "windows.png"]
  assert all(_is_png(tmp_path / name) for name in names)
  assert sorted(p.name for p in tmp_path.iterdir()) == names
