"""The values the diffusion config keys accept (jax-free, so start-up validation imports little)."""

PREDICTIONS = ("eps", "v", "x0")  # diffusion.prediction
LOSS_WEIGHTINGS = ("uniform", "min_snr")  # diffusion.loss_weighting
SAMPLERS = ("ddpm", "ddim", "dpmpp2m")  # sample.sampler
TIMESTEP_SPACINGS = ("leading", "trailing", "linspace")  # sample.timestep_spacing
