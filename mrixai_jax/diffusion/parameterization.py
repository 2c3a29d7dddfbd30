"""What the denoiser predicts (`diffusion.prediction`) and how its loss is weighted over t.

With x_t = α_t·x0 + σ_t·ε (α_t = sqrt(ᾱ_t), σ_t = sqrt(1 − ᾱ_t)) the network's output is one of
  eps  ε                       (Ho et al. 2020)
  v    α_t·ε − σ_t·x0          (Salimans & Ho 2022; well defined at zero terminal SNR, α_T = 0)
  x0   x0
and `to_x0_eps` recovers both x̂0 and ε̂ from it, as diffusers' schedulers do for
`prediction_type` "epsilon" | "v_prediction" | "sample".

Loss weighting (`diffusion.loss_weighting`): "uniform" is the plain MSE on the output; "min_snr"
(Hang et al. 2023) weights image b's MSE by min(SNR_t, γ)/SNR_t for ε, min(SNR_t, γ)/(SNR_t + 1)
for v and min(SNR_t, γ) for x0 (SNR_t = ᾱ_t/(1 − ᾱ_t), γ = `diffusion.min_snr_gamma`): all three
are then the same x0-MSE weighted by min(SNR_t, γ).
"""

import numpy as np

from mrixai_jax.diffusion.names import LOSS_WEIGHTINGS, PREDICTIONS


def check_prediction(prediction: str) -> None:
  if prediction not in PREDICTIONS:
    raise ValueError(f"diffusion.prediction must be one of {PREDICTIONS}, got {prediction!r}")


def training_target(prediction: str, x0, noise, alpha, sigma):
  """The output the network is trained to produce; `x0, noise: [B, ...]`, `alpha, sigma` broadcast."""
  check_prediction(prediction)
  if prediction == "eps":
    return noise
  if prediction == "v":
    return alpha * noise - sigma * x0
  return x0


def to_x0_eps(prediction: str, output, x_t, alpha, sigma) -> tuple:
  """`(x̂0, ε̂)` from the network's `output` at `x_t` (`[B, ...]`; `alpha, sigma` broadcast).

  ε-prediction divides by α_t (unbounded as ᾱ_t -> 0), x0-prediction by σ_t; v needs neither.
  """
  check_prediction(prediction)
  if prediction == "eps":
    return (x_t - sigma * output) / alpha, output
  if prediction == "v":
    return alpha * x_t - sigma * output, alpha * output + sigma * x_t
  return output, (x_t - alpha * output) / sigma


def loss_weights(prediction: str, weighting: str, alphas_cumprod: np.ndarray, gamma: float) -> np.ndarray:
  """Per-timestep weights `[T]` float64 of the output MSE (see the module docstring)."""
  check_prediction(prediction)
  abar = np.asarray(alphas_cumprod, np.float64)
  if weighting == "uniform":
    return np.ones_like(abar)
  if weighting != "min_snr":
    raise ValueError(f"diffusion.loss_weighting must be one of {LOSS_WEIGHTINGS}, got {weighting!r}")
  if not gamma > 0:
    raise ValueError(f"diffusion.min_snr_gamma must be positive, got {gamma}")
  with np.errstate(divide="ignore"):
    snr = abar / (1.0 - abar)
    if prediction == "eps":
      return np.minimum(1.0, gamma / snr)  # = min(SNR, γ)/SNR, also where SNR = 0
  if prediction == "v":
    return np.minimum(snr, gamma) / (snr + 1.0)
  return np.minimum(snr, gamma)
