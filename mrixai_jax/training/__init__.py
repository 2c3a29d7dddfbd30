"""One training loop for the diffusion model and the prototype heads."""
