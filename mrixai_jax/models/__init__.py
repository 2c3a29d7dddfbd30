"""Networks: the conditional UNet, VGG16/InceptionV3 feature extractors, prototype heads."""
