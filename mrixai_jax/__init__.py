"""mrixai-jax: mask-conditioned breast-MRI diffusion with prototype faithfulness explanations.

Submodules are imported lazily (``import mrixai_jax.metrics`` etc.) so that importing the package
costs little; nothing heavy (TensorFlow, TFDS, clu) is imported here.
"""

__version__ = "0.1.0"
