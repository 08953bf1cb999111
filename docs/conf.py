"""Sphinx configuration of the jaxloss documentation site (``make docs``).

Built with warnings as errors (``sphinx-build -W``) into ``docs/_build/html``.
Two folders are written here at every build and are not committed:

* ``docs/api/``: one page per public module, from the package's own module
  list and each module's ``__all__`` (``docs/apidoc.py``);
* ``docs/notebooks/``: the notebooks of ``notebooks/``. By default myst-nb
  executes them (cached by jupyter-cache in ``docs/_build/.jupyter_cache``,
  so a rebuild with unchanged notebooks executes nothing). When
  ``JAXLOSS_EXECUTED_NOTEBOOKS`` names a folder, the executed copies that
  ``tests/test_notebooks.py`` wrote there in the same CI run are used instead
  and nothing is executed again; each must have the committed notebook's
  cells, in order, and outputs, or the build fails.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import sys

import nbformat

DOCS = pathlib.Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path[:0] = [str(ROOT), str(DOCS)]

import apidoc  # noqa: E402  (docs/apidoc.py, after the path)

import jaxloss  # noqa: E402

project = "jaxloss"
author = "the jaxloss authors"
copyright = "2026, the jaxloss authors"
release = version = jaxloss.__version__

extensions = [
  "myst_nb",
  "sphinx.ext.autodoc",
  "sphinx.ext.autosummary",
  "sphinx.ext.napoleon",
  "sphinx.ext.mathjax",
]
exclude_patterns = ["_build", "README.md"]
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb"}

# Docstrings: Google style, the signatures as written (no annotations: the
# Args say the shapes), members in the order of __all__.
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_custom_sections = [("Reference implementation", "notes_style")]
autodoc_typehints = "none"
autodoc_member_order = "bysource"
autodoc_preserve_defaults = True
autosummary_generate = False  # the pages are docs/apidoc.py's

# Markdown pages and notebooks: $...$ math, heading anchors for the links
# between the Markdown files.
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]
myst_heading_anchors = 4
nb_execution_timeout = 180
nb_execution_raise_on_error = True
nb_execution_show_tb = True
nb_merge_streams = True

html_theme = "sphinx_book_theme"
html_title = f"jaxloss {version}"
html_theme_options = {
  "show_toc_level": 2,
  "navigation_with_keys": False,
}
html_static_path: list[str] = []


def _kernelspec() -> None:
  """A ``python3`` kernel that runs this interpreter, found first through
  ``JUPYTER_PATH`` (a user's own ``python3`` kernelspec could name another
  interpreter; tests/test_notebooks.py does the same)."""
  root = DOCS / "_build" / "jupyter"
  spec = root / "kernels" / "python3" / "kernel.json"
  spec.parent.mkdir(parents=True, exist_ok=True)
  spec.write_text(
    json.dumps(
      {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f"]
        + ["{connection_file}"],
        "display_name": "Python 3 (jaxloss docs)",
        "language": "python",
      }
    )
  )
  os.environ["JUPYTER_PATH"] = os.pathsep.join(
    [str(root)] + [p for p in [os.environ.get("JUPYTER_PATH")] if p]
  )


def _sources(nb) -> list:
  return [(c.cell_type, c.source) for c in nb.cells]


def _notebooks() -> str:
  """Copies the notebooks into docs/notebooks/; returns the execution mode."""
  target = DOCS / "notebooks"
  if target.exists():
    shutil.rmtree(target)
  target.mkdir()
  committed = sorted((ROOT / "notebooks").glob("*.ipynb"))
  executed = os.environ.get("JAXLOSS_EXECUTED_NOTEBOOKS")
  for path in committed:
    if not executed:
      shutil.copy(path, target / path.name)
      continue
    run = pathlib.Path(executed) / path.name
    if not run.exists():
      raise RuntimeError(f"{run}: no executed copy of {path.name}")
    ran = nbformat.read(run, as_version=4)
    if _sources(ran) != _sources(nbformat.read(path, as_version=4)):
      raise RuntimeError(f"{run} is not an execution of {path}")
    if not any(c.get("outputs") for c in ran.cells if c.cell_type == "code"):
      raise RuntimeError(f"{run} has no outputs")
    shutil.copy(run, target / path.name)
  for path in target.glob("*.ipynb"):  # links from notebooks/ to docs/
    path.write_text(path.read_text().replace("](../docs/", "](../"))
  (target / "index.md").write_text(
    "# Notebooks\n\n"
    "Executed when this site was built; each is also a Colab-ready file "
    "in the repository's `notebooks/` folder (sources in `notebooks/src/`)."
    "\n\n```{toctree}\n:maxdepth: 1\n\n"
    + "\n".join(p.stem for p in committed)
    + "\n```\n"
  )
  return "off" if executed else "cache"


apidoc.write(DOCS / "api")
_kernelspec()
nb_execution_mode = _notebooks()
nb_execution_cache_path = str(DOCS / "_build" / ".jupyter_cache")


def _join_name_lists(app, what, name, obj, options, lines):
  """An ``Args`` entry may list its names over two lines (``a, b,`` then,
  indented, ``c: text``), as docs/apidoc.py's parser reads them; napoleon
  wants them on one line, so join them before it runs."""
  section, indent = False, None
  i = 0
  while i < len(lines):
    line = lines[i]
    stripped = line.strip()
    if re.fullmatch(r"(Args|Arguments|Parameters|Attributes):", stripped):
      section, indent = True, len(line) - len(line.lstrip()) + 2
    elif section and stripped and len(line) - len(line.lstrip()) < indent:
      section = False
    elif (
      section
      and len(line) - len(line.lstrip()) == indent
      and stripped.endswith(",")
      and ":" not in stripped
      and i + 1 < len(lines)
      and lines[i + 1].startswith(" " * (indent + 1))
    ):
      lines[i] = line.rstrip() + " " + lines.pop(i + 1).strip()
      continue
    i += 1


def _anchors(app, relative_path, parent_docname, content):
  """benchmarks/RESULTS.md marks its sections with HTML anchors
  (``<a id="x"></a>``, linked as ``#x``), which MyST does not see: turn them
  into MyST targets."""
  if relative_path.name == "RESULTS.md":
    text = re.sub(r'<a id="(\w+)"></a>', r"(bench-\1)=", content[0])
    content[0] = re.sub(r"\]\(#(\w+)\)", r"](#bench-\1)", text)


def setup(app):
  app.connect("autodoc-process-docstring", _join_name_lists, priority=100)
  app.connect("include-read", _anchors)
