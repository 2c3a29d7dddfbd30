"""ml_collections config files: ``default`` (the paper, Duke, 256²) and ``demo`` (phantom, CPU minutes)."""
