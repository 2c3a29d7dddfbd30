"""The one optimizer factory: Adam over parameter groups, optional global-norm clipping.

Both trainers build their optimizers here: the diffusion model one group with decoupled weight
decay (AdamW), the prototype heads one group per top-level parameter tree with coupled L2 (torch's
`Adam(weight_decay=...)`, as the originals) and frozen groups.
"""

import dataclasses
from typing import Mapping, Union

import optax


@dataclasses.dataclass(frozen=True)
class Group:
  """One parameter group. `learning_rate`: a float or an optax schedule (a float <= 0 freezes the
  group: zero updates); `weight_decay`: decoupled (AdamW: after the Adam scaling, times the
  learning rate) or, with `decoupled=False`, coupled L2 (added to the gradient before Adam)."""

  learning_rate: Union[float, optax.Schedule]
  weight_decay: float = 0.0
  decoupled: bool = True


def _group_transform(group: Group, b1: float, b2: float, eps: float) -> optax.GradientTransformation:
  if not callable(group.learning_rate) and group.learning_rate <= 0:
    return optax.set_to_zero()
  adam = optax.scale_by_adam(b1, b2, eps)
  decay = optax.add_decayed_weights(float(group.weight_decay))
  rate = optax.scale_by_learning_rate(group.learning_rate)
  return optax.chain(adam, decay, rate) if group.decoupled else optax.chain(decay, adam, rate)


def adam(groups: Union[Group, Mapping[str, Group]], b1: float, b2: float, eps: float,
         clip_norm: float = 0.0) -> optax.GradientTransformation:
  """Adam with `groups`: one `Group` for every parameter, or `{top-level params key: Group}`
  (the params must be a dict with exactly those keys). `clip_norm > 0`: the gradients are first
  clipped to that global norm (over all groups)."""
  if isinstance(groups, Group):
    transform = _group_transform(groups, b1, b2, eps)
  else:
    transform = optax.multi_transform({name: _group_transform(g, b1, b2, eps) for name, g in groups.items()},
                                      lambda params: {k: k for k in params})
  if clip_norm > 0:
    return optax.chain(optax.clip_by_global_norm(clip_norm), transform)
  return transform
