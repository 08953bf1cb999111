"""Shared test set-up: strict numerics and the registry of every public loss."""

import importlib
import pkgutil

import jax

# Catch silent broadcasting between predictions and targets.
jax.config.update("jax_numpy_rank_promotion", "raise")

from tests import cases as _cases  # noqa: E402


def _case_modules():
  for info in pkgutil.iter_modules(_cases.__path__):
    if not info.name.startswith("_"):
      yield importlib.import_module(f"tests.cases.{info.name}")


def all_cases():
  """Every LossCase in tests/cases/*.py (each module's ``CASES`` list)."""
  return [case for module in _case_modules() for case in module.CASES]


def public_helpers():
  """Public callables that are not losses (each module's ``HELPERS`` set)."""
  return {"reduce", "checked", "loss"}.union(
    *(getattr(module, "HELPERS", set()) for module in _case_modules())
  )


# --------------------------------------------------------------------------- #
# Child processes that run in the background
#
# A few tests assert on what a long child process reports (the distributed
# checks on 8 simulated devices, the two-process multihost pair, the demo's
# sharded part). A test module names them in ``BACKGROUND = {fixture name:
# job}``, where ``job(folder) -> JSON-able result`` runs the child; its
# session fixture returns ``background_result(...)``. Once the tests are
# collected, the jobs that the selected tests need start, one after the
# other, in a thread of the first process that claims them (one per run,
# whichever xdist worker), and the tests that need them run last, so that no
# worker waits for them while the other one works: the children overlap the
# rest of the suite.

import json  # noqa: E402
import os  # noqa: E402
import pathlib  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402

import pytest  # noqa: E402

BACKGROUND_WAIT = 1800  # seconds a test waits for its child's result at most
_threads: list[threading.Thread] = []


def _shared_folder(basetemp: pathlib.Path) -> pathlib.Path:
  """The run's temporary folder, shared by every xdist worker (a worker's
  basetemp is ``<run's basetemp>/popen-gwN``)."""
  folder = (
    basetemp.parent if os.environ.get("PYTEST_XDIST_WORKER") else basetemp
  )
  return folder / "background"


def _jobs(item) -> dict:
  module = getattr(item, "module", None)
  return {
    f"{module.__name__}.{fixture}": job
    for fixture, job in getattr(module, "BACKGROUND", {}).items()
    if fixture in item.fixturenames
  }


def pytest_collection_modifyitems(items):
  # The tests that wait for a child run last (a stable sort: the same order
  # in every worker, as xdist requires).
  items.sort(key=lambda item: bool(_jobs(item)))


def _run(jobs: list, folder: pathlib.Path) -> None:
  for name, job in jobs:  # one child at a time: they share the 2 cores
    try:
      workdir = folder / name
      workdir.mkdir()
      result = {"result": job(workdir)}
    except BaseException:  # reported by the waiting test
      result = {"error": traceback.format_exc()}
    partial = folder / f"{name}.partial"
    partial.write_text(json.dumps(result))
    partial.rename(folder / f"{name}.json")


def pytest_collection_finish(session):
  if session.config.option.collectonly:
    return
  jobs = {}
  for item in session.items:
    jobs.update(_jobs(item))
  if not jobs:
    return
  folder = _shared_folder(session.config._tmp_path_factory.getbasetemp())
  folder.mkdir(exist_ok=True)
  try:  # the first process to create the marker runs the jobs
    os.close(os.open(folder / "started", os.O_CREAT | os.O_EXCL))
  except FileExistsError:
    return
  for name in jobs:
    (folder / f"{name}.started").touch()
  thread = threading.Thread(
    target=_run, args=(list(jobs.items()), folder), daemon=True
  )
  thread.start()
  _threads.append(thread)


def pytest_sessionfinish(session, exitstatus):
  # A worker whose own tests are done still owes the other one its results.
  if exitstatus != pytest.ExitCode.INTERRUPTED:
    for thread in _threads:
      thread.join(BACKGROUND_WAIT)


def background_result(tmp_path_factory, name: str, job):
  """The result of the background job ``name`` (``"<module>.<fixture>"``),
  waiting for it; the job runs here if no process started it."""
  folder = _shared_folder(tmp_path_factory.getbasetemp())
  if not (folder / f"{name}.started").exists():
    folder.mkdir(exist_ok=True)
    _run([(name, job)], folder)
  path = folder / f"{name}.json"
  deadline = time.monotonic() + BACKGROUND_WAIT
  while not path.exists():
    if time.monotonic() > deadline:
      pytest.fail(f"{name}: no result after {BACKGROUND_WAIT} s")
    time.sleep(0.2)
  report = json.loads(path.read_text())
  if "error" in report:
    pytest.fail(f"{name} failed:\n{report['error']}")
  return report["result"]
