"""The house rules of docs/design.md (Layout), checked on the source tree.

Text and imports only: no JAX computation.
"""

import ast
import importlib
import inspect
import pathlib
import re

import pytest

import jaxloss
from jaxloss._core import families

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "jaxloss"
PUBLIC = families.FAMILIES + families.OTHER_MODULES
SOURCES = sorted(PACKAGE.rglob("*.py"))
TESTS = sorted((ROOT / "tests").rglob("*.py"))


def _imports(path):
  """``(module, names)`` of every import statement in ``path``."""
  for node in ast.walk(ast.parse(path.read_text())):
    if isinstance(node, ast.ImportFrom) and node.module:
      yield node.module, [a.name for a in node.names]
    elif isinstance(node, ast.Import):
      for alias in node.names:
        yield alias.name, []


def test_every_public_module_is_listed_once():
  """jaxloss/ holds the listed modules, ``_core``, ``testing`` and nothing
  else: no ``_<family>_<part>.py`` siblings."""
  names = [m.name for m in PUBLIC]
  assert len(names) == len(set(names))
  found = {
    p.stem if p.is_file() else p.name
    for p in PACKAGE.iterdir()
    if (p.suffix == ".py" or (p / "__init__.py").exists())
    and p.name != "__init__.py"
  }
  assert found == set(names) | {"_core", "testing"}


def test_no_star_imports_in_the_package():
  star = [
    f"{p.relative_to(ROOT)}: from {module} import *"
    for p in SOURCES
    for module, imported in _imports(p)
    if "*" in imported
  ]
  assert not star


def test_flat_api_is_the_union_of_the_families():
  expected = {"REDUCTIONS", "checked", "loss", "reduce"}
  for family in families.FAMILIES:
    module = importlib.import_module(f"jaxloss.{family.name}")
    for name in module.__all__:
      assert getattr(jaxloss, name) is getattr(module, name), name
    expected |= set(module.__all__)
  assert sorted(jaxloss.__all__) == sorted(expected)


@pytest.mark.parametrize(
  "path",
  [p for p in SOURCES if p.name == "__init__.py" and p.parent != PACKAGE],
  ids=lambda p: str(p.relative_to(ROOT)),
)
def test_a_family_package_init_only_re_exports(path):
  """Docstring, imports and one literal ``__all__``: nothing else."""
  if path.parent.name == "_core":
    return
  body = ast.parse(path.read_text()).body
  kinds = [type(node).__name__ for node in body]
  assert set(kinds) <= {"Expr", "ImportFrom", "Import", "Assign"}, kinds
  assigns = [node for node in body if isinstance(node, ast.Assign)]
  assert [a.targets[0].id for a in assigns] == ["__all__"]  # type: ignore
  assert isinstance(assigns[0].value, ast.List)


def _private(module):
  """Whether an absolute import path names a private part of jaxloss."""
  parts = module.split(".")
  return parts[0] == "jaxloss" and any(p.startswith("_") for p in parts[1:])


def test_no_family_imports_another_familys_private_parts():
  wrong = []
  for path in SOURCES:
    here = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
    for module, _ in _imports(path):
      parts = module.split(".")
      if _private(module) and parts[1] not in ("_core", here):
        wrong.append(f"{path.relative_to(ROOT)}: {module}")
  assert not wrong


def _reads_the_family_list(module, names):
  return module == "jaxloss._core.families" or (
    module == "jaxloss._core" and names == ["families"]
  )


def test_tests_import_nothing_private():
  """Only the unit tests of ``_core`` (tests/test_core*.py) import it; other
  tests may read the list of families."""
  wrong = [
    f"{path.relative_to(ROOT)}: {module}"
    for path in TESTS
    for module, names in _imports(path)
    if _private(module)
    and not _reads_the_family_list(module, names)
    and not (
      path.name.startswith("test_core") and module.startswith("jaxloss._core")
    )
  ]
  assert not wrong


def _public_functions():
  for module in PUBLIC:
    mod = importlib.import_module(f"jaxloss.{module.name}")
    for name in mod.__all__:
      obj = getattr(mod, name)
      if inspect.isfunction(obj):
        yield f"jaxloss.{module.name}.{name}", obj
  yield "jaxloss.reduce", jaxloss.reduce
  yield "jaxloss.checked", jaxloss.checked
  yield "jaxloss.loss", jaxloss.loss


@pytest.mark.parametrize(
  "qualname, fn", [pytest.param(*f, id=f[0]) for f in _public_functions()]
)
def test_public_function_is_annotated(qualname, fn):
  signature = inspect.signature(fn)
  bare = [
    p.name
    for p in signature.parameters.values()
    if p.annotation is p.empty and p.kind not in (p.VAR_POSITIONAL,)
  ]
  assert not bare, f"{qualname}: parameters without annotations {bare}"
  assert signature.return_annotation is not signature.empty, qualname


def test_losses_say_their_name_once():
  """No loss passes its own name by hand: ``@loss`` records it."""
  pattern = re.compile(r"""^\s*(name|_NAME)\s*=\s*["']""", re.M)
  wrong = [
    str(p.relative_to(ROOT)) for p in SOURCES if pattern.search(p.read_text())
  ]
  assert not wrong


def test_py_typed_ships():
  assert (PACKAGE / "py.typed").exists()
