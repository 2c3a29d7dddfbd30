"""Layering of mrixai_jax: no import cycle between its modules, and models/, diffusion/ and data/
import nothing from the layers built on them.

Every module is parsed with `ast`; every import counts, function-local ones included, and relative
imports are resolved against the importing module's package. `from X import name` is an edge to
the module `X.name` when there is one, else to `X`.
"""

import ast
import pathlib

import pytest

PACKAGE = "mrixai_jax"
ROOT = pathlib.Path(__file__).resolve().parents[1] / PACKAGE
LOW_LAYERS = ("models", "diffusion", "data")
HIGH_LAYERS = ("training", "explain", "metrics", "report", "pretrained", "stages", "study", "generate",
               "evaluate")


def _module_name(path: pathlib.Path) -> str:
  parts = path.relative_to(ROOT.parent).with_suffix("").parts
  return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(source: str, module: str, is_package: bool, modules) -> dict:
  """`{imported module: first line}` of the package `modules` that `source` (the text of `module`)
  imports anywhere, itself excluded."""
  package = module if is_package else module.rpartition(".")[0]
  found = {}
  for node in ast.walk(ast.parse(source)):
    if isinstance(node, ast.Import):
      names = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ""
      if node.level:
        anchor = package.rsplit(".", node.level - 1)[0]
        base = f"{anchor}.{base}" if base else anchor
      names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
    else:
      continue
    for name in names:
      if name in modules and name != module:
        found.setdefault(name, node.lineno)
  return found


@pytest.fixture(scope="module")
def graph() -> dict:
  """`{module: {imported module: line}}` over every module of the package."""
  paths = {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}
  return {m: _imports(p.read_text(), m, p.name == "__init__.py", paths) for m, p in paths.items()}


def _reachable(graph: dict, start: str) -> set:
  seen, stack = {start}, [start]
  while stack:
    for target in graph[stack.pop()]:
      if target not in seen:
        seen.add(target)
        stack.append(target)
  return seen


def _in_layer(module: str, layer: str) -> bool:
  name = f"{PACKAGE}.{layer}"
  return module == name or module.startswith(name + ".")


def test_parser_sees_function_local_and_relative_imports(graph):
  # cli imports training.interrupts inside a function (it imports JAX, which must follow xla_flags).
  assert f"{PACKAGE}.training.interrupts" in graph[f"{PACKAGE}.cli"]
  modules = {f"{PACKAGE}.metrics", f"{PACKAGE}.metrics.frechet", f"{PACKAGE}.models", f"{PACKAGE}.models.vgg"}
  source = "def f():\n  from ..metrics import frechet\n  from . import vgg\n  from .. import metrics\n"
  assert _imports(source, f"{PACKAGE}.models.unet", False, modules) == {
      f"{PACKAGE}.metrics.frechet": 2, f"{PACKAGE}.models.vgg": 3, f"{PACKAGE}.metrics": 4}


def test_no_import_cycle(graph):
  reach = {m: _reachable(graph, m) for m in graph}
  cyclic = [f"{a} -> {b} (line {line})" for a, targets in sorted(graph.items())
            for b, line in sorted(targets.items()) if a in reach[b]]
  assert not cyclic, "edges on an import cycle:\n" + "\n".join(cyclic)


def test_low_layers_import_no_higher_layer(graph):
  upward = [f"{a} -> {b} (line {line})" for a, targets in sorted(graph.items())
            if any(_in_layer(a, low) for low in LOW_LAYERS)
            for b, line in sorted(targets.items()) if any(_in_layer(b, high) for high in HIGH_LAYERS)]
  assert not upward, "models/, diffusion/ or data/ import a higher layer:\n" + "\n".join(upward)
