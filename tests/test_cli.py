"""Entry points: config mistakes give one clear line naming the key, exit code 2, no traceback."""

import subprocess
import sys

import pytest

from configs import demo
from mrixai_jax import config_validation
from mrixai_jax.errors import ConfigError


def _run(*args):
  proc = subprocess.run([sys.executable, "train.py", "--config=configs/demo.py", "--workdir=/tmp/unused",
                         *args], capture_output=True, text=True, timeout=120)
  return proc.returncode, proc.stderr


@pytest.mark.parametrize("override, expected", [
    ("--config.train.bogus=3", "unknown config key 'config.train.bogus'"),
    ("--config.train.batch_size=abc", "--config.train.batch_size=abc"),
    ("--config.data.image_size=60", "config.data.image_size: 60 is not divisible"),
    ("--config.sample.num_steps=2000", "config.sample.num_steps"),
    ("--config.heads.train.num_steps=10", "config.heads.train.num_steps: 10 is less than heads.train.warm_steps"),
])
def test_bad_overrides_fail_at_start_with_the_key_named(override, expected):
  code, err = _run(override)
  assert code == 2
  assert expected in err
  assert "Traceback" not in err


def test_missing_config_file_is_named():
  proc = subprocess.run([sys.executable, "sample.py", "--config=configs/nope.py", "--workdir=/tmp/x"],
                        capture_output=True, text=True, timeout=120)
  assert proc.returncode == 2 and "configs/nope.py" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("key, value, device_count", [
    ("train.batch_size", 6, 4), ("heads.kind", "protonet", 1), ("sample.sampler", "euler", 1),
    ("diffusion.p_uncond", 1.5, 1), ("heads.purity_threshold", 0.0, 1), ("heads.train.feature_cache_mb", -1, 1),
    ("sample.karras_sigmas", True, 1),  # the demo samples with DDIM, which has no Karras levels
    ("sample.eta", -0.5, 1),
    ("heads.train.num_steps", 10, 1),  # the demo's warm (50) + last-layer (50) phases do not fit
    ("heads.train.warm_steps", -1, 1),
])
def test_validate_names_the_offending_key(key, value, device_count):
  config = demo.get_config()
  section, leaf = key.rsplit(".", 1)
  node = config
  for part in section.split("."):
    node = node[part]
  node[leaf] = value
  with pytest.raises(ConfigError, match=f"config.{key}"):
    config_validation.validate(config, num_devices=device_count)


def test_shipped_configs_are_valid():
  from configs import default  # pylint: disable=g-import-not-at-top

  config_validation.validate(demo.get_config(), num_devices=4)
  paper = default.get_config()
  paper.data.manual_dir = "/data/duke"
  config_validation.validate(paper, num_devices=1)
