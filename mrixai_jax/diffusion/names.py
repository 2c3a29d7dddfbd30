"""The values the diffusion config keys accept (jax-free, so start-up validation imports little)."""

PREDICTIONS = ("eps", "v", "x0")  # diffusion.prediction
LOSS_WEIGHTINGS = ("uniform", "min_snr")  # diffusion.loss_weighting
SAMPLERS = ("ddpm", "ddim", "dpmpp2m", "dpmpp2m_sde")  # sample.sampler
DPM_SAMPLERS = ("dpmpp2m", "dpmpp2m_sde")  # the samplers sample.karras_sigmas applies to
TIMESTEP_SPACINGS = ("leading", "trailing", "linspace")  # sample.timestep_spacing
