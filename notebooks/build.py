"""Writes this folder's Colab-ready notebooks from ``src/``, outputs cleared.

Each notebook's source is a Python file in ``src/`` in the "percent" format:
a line ``# %%`` starts a code cell, ``# %% [markdown]`` a Markdown cell whose
lines are comments (``# `` is stripped). The sources stay reviewable (and
runnable) as Python; this script adds what every notebook shares, a note on
running it and, at the top of its first code cell, the Colab install::

  .venv/bin/python notebooks/build.py

``tests/test_notebooks.py`` executes every notebook and checks that this
script reproduces the committed files.
"""

from __future__ import annotations

import pathlib

import nbformat

HERE = pathlib.Path(__file__).resolve().parent
SOURCES = HERE / "src"
REPOSITORY = "git+https://github.com/jaxloss/jaxloss"

COLAB_NOTE = f"""\
**Running this notebook.** Locally (from a clone, after `make venv`), it uses
the installed jaxloss and the install lines of the first code cell do
nothing. In Google Colab they run

    pip install {REPOSITORY}

That URL is a placeholder for the project's repository until it is
published: replace it with the real one (or a wheel) if the install fails."""

INSTALL = f"""\
# In Colab, install jaxloss (placeholder URL, see above); locally, do nothing.
import subprocess
import sys

try:
  import google.colab  # noqa: F401
  IN_COLAB = True
except ImportError:
  IN_COLAB = False
if IN_COLAB:
  subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                  "{REPOSITORY}"], check=True)
"""


def cells(source: str) -> list[tuple[str, str]]:
  """``[(kind, text)]`` of a percent-format source, kind "code"/"markdown"."""
  found = []
  for line in source.splitlines():
    if line.startswith("# %%"):
      found.append(("markdown" if "[markdown]" in line else "code", []))
    elif not found:
      raise ValueError(f"text before the first `# %%` marker: {line!r}")
    elif found[-1][0] == "markdown":
      found[-1][1].append(line[2:] if line.startswith("# ") else line[1:])
    else:
      found[-1][1].append(line)
  return [(kind, "\n".join(lines).strip("\n")) for kind, lines in found]


def notebook(source: str) -> nbformat.NotebookNode:
  """The notebook of a source: the Colab note and the install added."""
  parsed = cells(source)
  first = next(i for i, (kind, _) in enumerate(parsed) if kind == "code")
  parsed[first] = ("code", INSTALL + "\n" + parsed[first][1])
  parsed.insert(first, ("markdown", COLAB_NOTE))
  nb = nbformat.v4.new_notebook(
    cells=[
      nbformat.v4.new_markdown_cell(text)
      if kind == "markdown"
      else nbformat.v4.new_code_cell(text)
      for kind, text in parsed
    ]
  )
  nb.metadata = {
    "kernelspec": {
      "name": "python3",
      "display_name": "Python 3",
      "language": "python",
    },
    "language_info": {"name": "python"},
    "colab": {"provenance": []},
  }
  for i, cell in enumerate(nb.cells):
    cell.id = f"cell-{i:02d}"  # stable ids: rebuilding changes nothing
  return nb


NOTEBOOKS = {
  f"{path.stem}.ipynb": path for path in sorted(SOURCES.glob("*.py"))
}


def render(name: str) -> str:
  """The text of notebook ``name`` as this script writes it."""
  return nbformat.writes(notebook(NOTEBOOKS[name].read_text())) + "\n"


def main():
  for name in NOTEBOOKS:
    (HERE / name).write_text(render(name))
    print("wrote", HERE / name)


if __name__ == "__main__":
  main()
