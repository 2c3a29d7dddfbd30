"""Dotted-key config edits, e.g. `with_values(config, {"heads.kind": "ppnet"})`, and the flat view of a config."""


def flatten(tree: dict, prefix: str = "", sep: str = ".") -> dict:
  """`{"a": {"b": 1}}` -> `{"a.b": 1}` (nested dicts only; other values are leaves)."""
  flat = {}
  for key, value in tree.items():
    name = f"{prefix}{key}"
    if isinstance(value, dict):
      flat.update(flatten(value, name + sep, sep))
    else:
      flat[name] = value
  return flat


def _like(current, value):
  """`value` (as read back from JSON) in the type of the field it replaces: lists become tuples there."""
  if isinstance(current, tuple) and isinstance(value, list):
    return tuple(_like(c, v) for c, v in zip(current + (None,) * len(value), value))
  return value


def _parent(config, dotted: str) -> tuple:
  """`(node, leaf)` with `node[leaf]` the field `dotted` names."""
  *parents, leaf = dotted.split(".")
  for part in parents:
    config = config[part]
  return config, leaf


def set_values(config, values: dict) -> None:
  """Sets `section.key = value` in the ml_collections `config`, in place (the keys must exist)."""
  for dotted, value in values.items():
    node, leaf = _parent(config, dotted)
    node[leaf] = _like(node[leaf], value)


def with_values(config, values: dict):
  """A resolved copy of `config` with `section.key = value` set for each item (new keys allowed)."""
  config = config.copy_and_resolve_references()
  with config.unlocked():
    for dotted, value in values.items():
      node, leaf = _parent(config, dotted)
      node[leaf] = value
  return config
