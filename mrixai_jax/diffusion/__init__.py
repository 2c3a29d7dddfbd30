"""Diffusion maths: noise schedules, training loss, samplers."""
