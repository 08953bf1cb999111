"""The docs cover the package: every public symbol documented and on an API
page of the site, the names page and the README true to the package.

Text only: imports and docstrings, no JAX computation (the site itself is
built by ``make docs``, a CI step of its own).
"""

import importlib
import importlib.util
import pathlib
import pkgutil
import re
import sys

import pytest

import jaxloss
from jaxloss._core import families

ROOT = pathlib.Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location(
  "apidoc", ROOT / "docs" / "apidoc.py"
)
apidoc = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = apidoc  # dataclasses look their module up there
_spec.loader.exec_module(apidoc)

GROUPS = apidoc.catalogue()
ENTRIES = [e for *_, entries in GROUPS for e in entries]
SUBMODULES = tuple(m.name for m in families.OTHER_MODULES)


def test_api_pages_group_the_flat_api_exactly():
  flat = [
    e.qualname.split(".", 1)[1] for e in ENTRIES if e.qualname.count(".") == 1
  ]
  assert len(flat) == len(set(flat)), "a name is listed in two families"
  assert sorted(flat) == sorted(jaxloss.__all__)


@pytest.mark.parametrize("module", SUBMODULES)
def test_api_pages_list_each_submodule(module):
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


def test_every_public_module_is_listed():
  """A public module of the package (a family added as a package or a
  module) is in ``jaxloss/_core/families.py``, which the API pages follow."""
  listed = {m.name for m in families.FAMILIES + families.OTHER_MODULES}
  public = {
    m.name
    for m in pkgutil.iter_modules(jaxloss.__path__)
    if not m.name.startswith("_")
  }
  # jaxloss.testing is the conformance harness of the test suite, not API.
  assert public - {"testing"} == listed


def test_every_public_name_is_on_an_api_page():
  """Each name in an ``__all__`` has an autodoc directive on some generated
  page, under the module its page sets as current (``make docs`` then checks
  the built site's inventory: ``docs/apidoc.py --check-site``)."""
  documented = set()
  for text in apidoc.pages().values():
    current = None
    for line in text.splitlines():
      match = re.match(r"\.\. (currentmodule|auto\w+):: (\S+)", line)
      if match and match.group(1) == "currentmodule":
        current = match.group(2)
      elif match and match.group(1) in (
        "autofunction",
        "autoclass",
        "autodata",
      ):
        documented.add(f"{current}.{match.group(2)}")
  assert documented == apidoc.public_names()
  assert len(documented) > 150  # 200 at issue 24


def test_changelog_has_this_version():
  text = (ROOT / "CHANGELOG.md").read_text()
  assert f"## [{jaxloss.__version__}] - " in text
  assert "## [Unreleased]" in text


def test_readme_links_the_site_changelog_and_benchmarks():
  text = (ROOT / "README.md").read_text()[:4000]  # the first screen or so
  for target in ("CHANGELOG.md", "benchmarks/RESULTS.md", "make docs"):
    assert target in text, target


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
    "CHANGELOG.md",
    "docs/names.md",
    "docs/index.md",
    "docs/choosing.md",
    "docs/scaling.md",
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
  broken = [link for link in local if not _resolves(path, link)]
  assert not broken, f"{doc}: broken links {broken}"


def _resolves(page, link):
  """Whether a relative link of ``page`` names a file. The site's
  ``docs/notebooks/`` is a copy of ``notebooks/`` made by docs/conf.py at
  build time (git-ignored): a docs page's ``notebooks/X.ipynb`` must be one
  of the repository's notebooks."""
  if page.parent == ROOT / "docs" and link.startswith("notebooks/"):
    return (ROOT / link).exists()
  return (page.parent / link).exists()
