"""Config copies with dotted-key overrides, e.g. `with_values(config, {"heads.kind": "ppnet"})`."""


def with_values(config, values: dict):
  """A resolved copy of the ml_collections `config` with `section.key = value` set for each item."""
  config = config.copy_and_resolve_references()
  with config.unlocked():
    for dotted, value in values.items():
      node = config
      *parents, leaf = dotted.split(".")
      for part in parents:
        node = node[part]
      node[leaf] = value
  return config
