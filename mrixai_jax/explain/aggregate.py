"""One head's faithfulness over its training seeds, and the pairwise comparison of heads.

Per-image arrays of every seed (`head_explainer.explain` / `score`) become the summary that
report.json holds under `faithfulness[<head>]`; intervals come from the two-level bootstrap over
seeds and patients (`statistics.two_level_bootstrap`), paired p-values from patient-level sign flips.
"""

import itertools

import numpy as np

from mrixai_jax.explain import emergence
from mrixai_jax.explain import null_prototypes
from mrixai_jax.explain import statistics


def nis_diagnostics(nis, rho) -> dict:
  """How concentrated the NIS is and how similar the windows are, `nis, rho: [N, P]` (one seed):
  `mean_rho` (over images and prototypes with NIS > 0), `top1_rho` (ρ of each image's largest-NIS
  prototype), `entropy` (mean over images of −Σ NIS ln NIS, nats) and `effective_prototypes`
  (mean of exp(entropy): P for a uniform NIS, 1 when one prototype takes it all)."""
  nis, rho = np.asarray(nis, np.float64), np.asarray(rho, np.float64)
  used = nis > 0
  entropy = -np.sum(np.where(used, nis * np.log(np.where(used, nis, 1.0)), 0.0), axis=1)
  top1 = rho[np.arange(len(nis)), np.argmax(nis, axis=1)]
  return {"mean_rho": float(rho[used].mean()), "top1_rho": float(top1.mean()),
          "entropy": float(entropy.mean()), "effective_prototypes": float(np.exp(entropy).mean())}


def _interval(values, groups, explain_config, offset: int = 0) -> dict:
  return statistics.two_level_bootstrap(values, groups, int(explain_config.bootstrap_samples),
                                        int(explain_config.seed) + offset)


def _stack(per_seed: list, key: str) -> np.ndarray:
  return np.stack([np.asarray(a[key], np.float64) for a in per_seed])


def _paired(values, groups, explain_config, offset: int) -> dict:
  """Two-level CI of per-image differences `values [S, N]` and their sign-flip p-value."""
  return dict(_interval(values, groups, explain_config, offset),
              p_value=statistics.sign_flip_test(values, groups, int(explain_config.permutations),
                                                int(explain_config.seed)))


def by_window(per_seed: list, groups, explain_config) -> dict:
  """`{"<L>": {"mean", "ci95"}}`: F at each window size L of `windows` (the seeds share them)."""
  f = _stack(per_seed, "faithfulness_by_window")  # [S, W, N]
  return {str(int(size)): _interval(f[:, w], groups, explain_config, offset=4)
          for w, size in enumerate(per_seed[0]["windows"])}


def null_summary(per_seed: list, observed: float) -> dict:
  """F under tissue-matched random prototypes: `draws`, `mean`, `quantiles95` (central 95% of the
  null) and `p_value`, one-sided, of the observed mean F. Draw d's statistic is the mean over seeds
  of its mean F over the images (each seed its own draws)."""
  null = _stack(per_seed, "faithfulness_null_draws").mean(axis=0)  # [D]
  return {"draws": int(null.size), "mean": float(null.mean()),
          "quantiles95": [float(v) for v in np.percentile(null, [2.5, 97.5])],
          "p_value": null_prototypes.p_value(observed, null)}


def deletion_summary(per_seed: list, groups, explain_config) -> dict:
  """Similarity drop when the top prototypes' windows are blurred (`drop_top`) and when
  tissue-matched random windows are (`drop_random`); `ci95_diff` and `p_value` of top − random."""
  top, random = _stack(per_seed, "deletion_drop_top"), _stack(per_seed, "deletion_drop_random")
  diff = _paired(top - random, groups, explain_config, offset=5)
  return {"drop_top": float(top.mean()), "drop_random": float(random.mean()), "ci95_diff": diff["ci95"],
          "p_value": diff["p_value"]}


def tissue_purity(per_seed: list, groups, explain_config) -> dict:
  """Share of firings (image × prototype with a tissue) on cells of the prototype's own tissue:
  `value`, `ci95`, and `chance` (the share for a uniformly random cell)."""
  def per_image(key):
    rates = []
    for a in per_seed:
      used = np.asarray(a["prototype_class"]) >= 0
      rates.append(np.asarray(a[key], np.float64)[:, used].mean(axis=1))
    return np.stack(rates)

  interval = _interval(per_image("tissue_hit"), groups, explain_config, offset=6)
  return {"value": interval["mean"], "ci95": interval["ci95"], "chance": float(per_image("tissue_chance").mean())}


def emergence_summary(per_seed: list, groups, explain_config) -> dict:
  """`emergence.half_rise_step` of the mean F of x̂0 along the trajectory with its two-level CI;
  `final` (F of the last captured x̂0) and `curve` (mean F per captured step of `steps`)."""
  f = _stack(per_seed, "emergence_faithfulness")  # [S, N, K]
  steps = np.asarray(per_seed[0]["trajectory_steps"])
  out = statistics.bootstrap_statistic(f, groups, lambda curve: emergence.half_rise_step(curve, steps),
                                       int(explain_config.bootstrap_samples), int(explain_config.seed) + 7)
  curve = f.mean(axis=(0, 1))
  return dict(out, unit="sampler step", steps=[int(v) for v in steps], curve=[float(v) for v in curve],
              final=float(curve[-1]))


def head_summary(per_seed: list, per_seed_real, groups, seeds, explain_config) -> dict:
  """`faithfulness[<head>]` of report.json from the arrays of each seed on the samples (`per_seed`)
  and on their real counterparts (`per_seed_real`, None without counterparts); `groups: [N]`
  patient of each image (None: independent images); `seeds`: the heads' training seeds."""
  f = _stack(per_seed, "faithfulness")  # [S, N]
  mean_over_seeds = lambda key: float(np.mean([np.mean(a[key]) for a in per_seed]))
  diagnostics = [nis_diagnostics(a["nis"], a["rho"]) for a in per_seed]
  summary = dict(
      statistics.mean_sd(f.mean(axis=0)), **_interval(f, groups, explain_config),
      seeds=[int(s) for s in seeds], per_seed_mean=[float(v) for v in f.mean(axis=1)],
      randomized_mean=mean_over_seeds("faithfulness_randomized"),
      deletion_drop_top=mean_over_seeds("deletion_drop_top"),
      deletion_drop_random=mean_over_seeds("deletion_drop_random"),
      window=int(per_seed[0]["window"]), window_alt=int(per_seed[0]["window_alt"]),
      window_alt_mean=mean_over_seeds("faithfulness_window_alt"),
      by_window=by_window(per_seed, groups, explain_config),
      null=null_summary(per_seed, float(f.mean())),
      deletion=deletion_summary(per_seed, groups, explain_config),
      nis={k: float(np.mean([d[k] for d in diagnostics])) for k in diagnostics[0]},
      tissue_purity=tissue_purity(per_seed, groups, explain_config),
      emergence=emergence_summary(per_seed, groups, explain_config) if "emergence_faithfulness" in per_seed[0]
      else None,
      real=None, generated_minus_real=None)
  if per_seed_real is not None:
    real = _stack(per_seed_real, "faithfulness")
    summary["real"] = _interval(real, groups, explain_config, offset=1)
    summary["generated_minus_real"] = _paired(f - real, groups, explain_config, offset=2)
  return summary


def comparisons(scores: dict, groups, explain_config) -> list:
  """Every pair of heads (in `scores` order) on the same images: `{"a", "b", "diff", "ci95",
  "p_value", "p_holm"}` for F_a − F_b. `scores`: `{head: [S, N]}`; seed k of one head is paired with
  seed k of the other (independent trainings, so the pairing only fixes the resampling), both
  resampled together by the two-level bootstrap; p-values from patient-level sign flips of the
  seed-averaged per-image differences, Holm-corrected over all pairs."""
  rows = []
  for a, b in itertools.combinations(scores, 2):
    num_seeds = min(len(scores[a]), len(scores[b]))
    diff = np.asarray(scores[a][:num_seeds]) - np.asarray(scores[b][:num_seeds])
    paired = _paired(diff, groups, explain_config, offset=3)
    rows.append({"a": a, "b": b, "diff": paired["mean"], "ci95": paired["ci95"], "p_value": paired["p_value"]})
  for row, p_holm in zip(rows, statistics.holm([r["p_value"] for r in rows])):
    row["p_holm"] = p_holm
  return rows
