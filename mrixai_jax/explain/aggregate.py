"""One head's faithfulness over its training seeds, and the pairwise comparison of heads.

Per-image arrays of every seed (`head_explainer.explain` / `score`) become the summary that
report.json holds under `faithfulness[<head>]`; intervals come from the two-level bootstrap over
seeds and patients (`statistics.two_level_bootstrap`), paired p-values from patient-level sign flips.
"""

import itertools

import numpy as np

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


def head_summary(per_seed: list, per_seed_real, groups, seeds, explain_config) -> dict:
  """`faithfulness[<head>]` of report.json from the arrays of each seed on the samples (`per_seed`)
  and on their real counterparts (`per_seed_real`, None without counterparts); `groups: [N]`
  patient of each image (None: independent images); `seeds`: the heads' training seeds."""
  f = np.stack([a["faithfulness"] for a in per_seed])  # [S, N]
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
      nis={k: float(np.mean([d[k] for d in diagnostics])) for k in diagnostics[0]},
      real=None, generated_minus_real=None)
  if per_seed_real is not None:
    real = np.stack([a["faithfulness"] for a in per_seed_real])
    summary["real"] = _interval(real, groups, explain_config, offset=1)
    summary["generated_minus_real"] = dict(
        _interval(f - real, groups, explain_config, offset=2),
        p_value=statistics.sign_flip_test(f - real, groups, int(explain_config.permutations), int(explain_config.seed)))
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
    interval = _interval(diff, groups, explain_config, offset=3)
    rows.append({"a": a, "b": b, "diff": interval["mean"], "ci95": interval["ci95"],
                 "p_value": statistics.sign_flip_test(diff, groups, int(explain_config.permutations),
                                                      int(explain_config.seed))})
  for row, p_holm in zip(rows, statistics.holm([r["p_value"] for r in rows])):
    row["p_holm"] = p_holm
  return rows
