"""Every notebook in notebooks/ executes, in a kernel running this Python.

The notebooks are written by ``notebooks/build.py`` from ``notebooks/src/``;
the committed files must be exactly what it writes (so outputs stay cleared
and the sources are the truth). Each notebook runs in a fresh kernel from a
kernelspec written for the test, whose command is this interpreter
(``sys.executable``, the virtual environment's python), found first through
``JUPYTER_PATH`` whatever kernels the user has installed; a last, appended
cell checks it. The notebooks share one xdist group: each kernel compiles
with every core, and two at once would only slow both. With
``JAXLOSS_EXECUTED_NOTEBOOKS`` set (``.ci/run``), each executed notebook is
written there for the documentation site, which then does not execute them
again.
"""

import importlib.util
import json
import os
import pathlib
import sys
import time

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = pathlib.Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
SECONDS = 90  # per notebook; each takes 5-15 s on 2 cores.

KERNEL = "jaxloss-tests"

pytestmark = pytest.mark.xdist_group("notebooks")


@pytest.fixture
def kernel_name(tmp_path_factory, monkeypatch):
  """A kernelspec that runs ipykernel with this interpreter."""
  root = tmp_path_factory.getbasetemp() / "jupyter"
  spec = root / "kernels" / KERNEL / "kernel.json"
  if not spec.exists():
    spec.parent.mkdir(parents=True)
    spec.write_text(
      json.dumps(
        {
          "argv": [
            sys.executable,
            "-m",
            "ipykernel_launcher",
            "-f",
            "{connection_file}",
          ],
          "display_name": "jaxloss tests",
          "language": "python",
        }
      )
    )
  monkeypatch.setenv("JUPYTER_PATH", str(root))
  return KERNEL


def _build():
  spec = importlib.util.spec_from_file_location(
    "notebooks_build", NOTEBOOKS / "build.py"
  )
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


BUILD = _build()


def test_committed_notebooks_are_what_build_writes():
  committed = sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))
  assert committed == sorted(BUILD.NOTEBOOKS)
  for name in BUILD.NOTEBOOKS:
    assert (NOTEBOOKS / name).read_text() == BUILD.render(name), (
      f"{name} is stale: run `.venv/bin/python notebooks/build.py`"
    )


def test_notebooks_start_with_the_colab_install_cell():
  for name in BUILD.NOTEBOOKS:
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    first = next(c for c in nb.cells if c.cell_type == "code")
    assert "google.colab" in first.source and "pip" in first.source, name
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")


@pytest.mark.parametrize("name", sorted(BUILD.NOTEBOOKS))
def test_notebook_executes(name, kernel_name, tmp_path):
  nb = nbformat.read(NOTEBOOKS / name, as_version=4)
  nb.cells.append(
    nbformat.v4.new_code_cell("import sys; print(sys.executable)")
  )
  client = NotebookClient(
    nb,
    timeout=SECONDS,
    kernel_name=kernel_name,
    resources={"metadata": {"path": str(tmp_path)}},
  )
  start = time.perf_counter()
  client.execute()  # raises CellExecutionError on the first failing cell
  seconds = time.perf_counter() - start
  executable = nb.cells[-1].outputs[0]["text"].strip()
  assert (
    pathlib.Path(executable).resolve() == pathlib.Path(sys.executable).resolve()
  )
  assert seconds < SECONDS, f"{name} took {seconds:.0f} s"
  executed = os.environ.get("JAXLOSS_EXECUTED_NOTEBOOKS")
  if executed:  # .ci/run: the docs site shows these outputs (docs/conf.py)
    nb.cells.pop()  # the interpreter check appended above
    pathlib.Path(executed).mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, pathlib.Path(executed) / name)
