"""Load a diffusers `UNet2DModel` state dict into the params of `mrixai_jax.models.unet.UNet`.

Key mapping: "." before a number becomes "_" in the module path (`up_blocks.1.attentions.0.to_out.0`
-> `up_blocks_1/attentions_0/to_out_0`); `weight` is `kernel` (convolutions OIHW -> HWIO, linears
transposed) or `scale` (GroupNorm). Every key must map onto a param of the same shape and every
param must be covered, otherwise `ValueError` names the offending keys.
"""

from typing import Mapping

import flax
import numpy as np


def _flax_path(key: str) -> tuple:
  parts = []
  for part in key.split("."):
    if part.isdigit() and parts:
      parts[-1] = f"{parts[-1]}_{part}"
    else:
      parts.append(part)
  return tuple(parts)


def state_dict_to_params(state_dict: Mapping[str, np.ndarray], params_template) -> dict:
  """`state_dict`: diffusers key -> numpy array (torch layout); `params_template`: the UNet's params tree
  (only shapes are read). Returns a params tree of float32 numpy arrays with the template's structure.
  """
  flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(params_template))
  out, problems = {}, []
  for key, value in state_dict.items():
    value = np.asarray(value, dtype=np.float32)
    *path, leaf = _flax_path(key)
    path = tuple(path)
    if leaf == "weight":
      if path + ("scale",) in flat:
        leaf = "scale"
      else:
        leaf = "kernel"
        value = value.transpose(2, 3, 1, 0) if value.ndim == 4 else value.T
    target = path + (leaf,)
    if target not in flat:
      problems.append(f"{key}: no param {'/'.join(target)}")
    elif tuple(flat[target].shape) != value.shape:
      problems.append(f"{key}: shape {value.shape} (after transposing) != param shape {tuple(flat[target].shape)}")
    else:
      out[target] = np.ascontiguousarray(value)
  missing = sorted("/".join(p) for p in flat if p not in out)
  if missing:
    problems.append(f"params without a state-dict entry: {missing}")
  if problems:
    raise ValueError("diffusers state dict does not match the UNet:\n  " + "\n  ".join(problems))
  return flax.traverse_util.unflatten_dict(out)
