"""The docs cover the package: every public symbol documented, the generated
catalogue current, the names page and the README true to the package.

Text only: imports and docstrings, no JAX computation.
"""

import importlib
import importlib.util
import pathlib
import re
import sys

import pytest

import jaxloss
from jaxloss._core import families

ROOT = pathlib.Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location(
  "build_catalogue", ROOT / "docs" / "build_catalogue.py"
)
catalogue = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = catalogue  # dataclasses look their module up there
_spec.loader.exec_module(catalogue)

GROUPS = catalogue.catalogue()
ENTRIES = [e for *_, entries in GROUPS for e in entries]
SUBMODULES = tuple(m.name for m in families.OTHER_MODULES)


def test_catalogue_groups_the_flat_api_exactly():
  flat = [
    e.qualname.split(".", 1)[1] for e in ENTRIES if e.qualname.count(".") == 1
  ]
  assert len(flat) == len(set(flat)), "a name is listed in two families"
  assert sorted(flat) == sorted(jaxloss.__all__)


@pytest.mark.parametrize("module", SUBMODULES)
def test_catalogue_lists_each_submodule(module):
  listed = {
    e.qualname.rsplit(".", 1)[1]
    for e in ENTRIES
    if e.qualname.startswith(f"jaxloss.{module}.")
  }
  assert listed == set(importlib.import_module(f"jaxloss.{module}").__all__)


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e.qualname)
def test_public_symbol_is_documented(entry):
  """DESIGN.md §2.6: a loss has a summary, a ``.. math::`` formula, Args
  (every parameter), Returns, a doctest, References and the implementation
  it matches; a module its call, a helper the parts that apply to it."""
  assert entry.missing() == [], (
    f"{entry.qualname} ({entry.kind}) lacks: {', '.join(entry.missing())}"
  )


def test_catalogue_is_current():
  text = (ROOT / "docs" / "catalogue.md").read_text()
  assert text == catalogue.render(), (
    "docs/catalogue.md is stale: run .venv/bin/python docs/build_catalogue.py"
  )


def test_every_catalogued_name_imports_from_where_it_is_listed():
  """Each ``### `jaxloss...``` entry of docs/catalogue.md resolves in the
  module whose section lists it, and from ``jaxloss`` for the flat API."""
  titles = {m.title: m for m in families.FAMILIES + families.OTHER_MODULES}
  module, checked = None, 0
  for line in (ROOT / "docs" / "catalogue.md").read_text().splitlines():
    if line.startswith("## "):
      module = titles.get(line[3:].strip())
    elif line.startswith("### `jaxloss.") and module is not None:
      name = line.strip()[5:-1].rsplit(".", 1)[1]
      mod = importlib.import_module(f"jaxloss.{module.name}")
      assert name in mod.__all__ and callable(getattr(mod, name)), (
        f"jaxloss.{module.name}.{name}"
      )
      if module in families.FAMILIES:
        assert getattr(jaxloss, name) is getattr(mod, name), name
      checked += 1
  listed = sum(
    len(importlib.import_module(f"jaxloss.{m.name}").__all__)
    for m in families.FAMILIES + families.OTHER_MODULES
  )
  assert checked == listed


def _table_column(path, header):
  """The cells under ``header`` of every Markdown table in ``path``."""
  cells, column = [], None
  for line in path.read_text().splitlines():
    if not line.startswith("|"):
      column = None
      continue
    row = [c.strip() for c in line.strip().strip("|").split("|")]
    if column is None:
      column = row.index(header) if header in row else -1
    elif column >= 0 and not set(line) <= set("|-: "):
      cells.append(row[column])
  return cells


def _resolve(name):
  obj = jaxloss
  for part in name.split("."):
    obj = getattr(obj, part)
  return obj


def test_names_page_lists_only_jaxloss_names_that_exist():
  cells = _table_column(ROOT / "docs" / "names.md", "jaxloss")
  names = [n for cell in cells for n in re.findall(r"`([^`]+)`", cell)]
  assert len(names) > 100
  missing = []
  for name in names:
    try:
      _resolve(name)
    except AttributeError:
      missing.append(name)
  assert not missing, f"docs/names.md names what jaxloss lacks: {missing}"
  assert all(cell and re.fullmatch(r"(`[\w.]+`(, )?)+", cell) for cell in cells)


def test_names_page_maps_every_optax_name():
  optax = pytest.importorskip("optax")
  cells = _table_column(ROOT / "docs" / "names.md", "optax.losses")
  listed = {n for cell in cells for n in re.findall(r"`([^`]+)`", cell)}
  public = {
    n
    for n in dir(optax.losses)
    if not n.startswith("_") and callable(getattr(optax.losses, n))
  }
  assert public <= listed


def test_readme_family_counts_match_the_package():
  rows = {}
  for line in (ROOT / "README.md").read_text().splitlines():
    match = re.match(r"^\|[^|]*\| `(jaxloss(?:\.\w+)?)` \| (\d+) \|", line)
    if match:
      rows[match.group(1)] = int(match.group(2))
  expected = {
    f"jaxloss.{m}": len(importlib.import_module(f"jaxloss.{m}").__all__)
    for m, *_ in families.FAMILIES
  }
  expected.update(
    {
      f"jaxloss.{m}": len(importlib.import_module(f"jaxloss.{m}").__all__)
      for m in SUBMODULES
    }
  )
  assert rows == expected


@pytest.mark.parametrize(
  "doc",
  [
    "README.md",
    "docs/names.md",
    "docs/catalogue.md",
    "docs/distributed.md",
    "benchmarks/RESULTS.md",
  ],
)
def test_relative_links_resolve(doc):
  path = ROOT / doc
  links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", path.read_text())
  local = [
    link
    for link in links
    if "://" not in link and not link.startswith(("mailto:", "out/"))
  ]
  broken = [link for link in local if not (path.parent / link).exists()]
  assert not broken, f"{doc}: broken links {broken}"
