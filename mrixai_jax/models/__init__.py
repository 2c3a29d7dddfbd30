"""Networks: the conditional UNet, VGG16/InceptionV3 feature extractors, prototype heads and their
receptive fields; architectures and weight layouts only (`mrixai_jax.pretrained` loads the weights)."""
