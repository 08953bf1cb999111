"""jaxloss.distributed across 2 processes × 4 CPU devices, as on a pod.

Two child processes run tests/multihost_checks.py, joined by
``jax.distributed.initialize`` on 127.0.0.1 (a free port chosen here) with
gloo's CPU collectives; each builds its inputs from its own rows only and
compares every sharded loss of the registry (tests/cases/distributed.py),
with every strategy its loss has, on an ``(8,)`` and a ``(2, 4)`` mesh, with
the one-device loss of the whole batch. Each child prints one JSON line per
check; the tests here assert on them per group and per process. The children
get XLA:CPU's fast-compile flags (conftest.py) and a bounded time, and are
killed whatever happens.
"""

import json
import pathlib
import sys
import time

import pytest

from jaxloss_examples.multihost import child_env, free_port, run_processes
from tests import multihost_checks
from tests.cases.distributed import SHARDED
from tests.child_report import assert_group
from tests.conftest import background_result

ROOT = pathlib.Path(__file__).resolve().parent.parent
PROCESSES = multihost_checks.PROCESSES
XLA_FLAGS = (
  f"--xla_force_host_platform_device_count={multihost_checks.LOCAL_DEVICES} "
  "--xla_backend_optimization_level=0 "
  "--xla_cpu_use_fusion_emitters=false "
  "--xla_cpu_parallel_codegen_split_count=1"
)
TIMEOUT = 480  # seconds for both; about 40 s on 2 cores, beside the suite.


def _run_pair(workdir):
  port = free_port()
  start = time.monotonic()
  children = run_processes(
    lambda i: [
      sys.executable,
      "-m",
      "tests.multihost_checks",
      str(i),
      str(PROCESSES),
      str(port),
    ],
    PROCESSES,
    env=child_env(XLA_FLAGS),
    timeout=TIMEOUT,
    logdir=workdir,
  )
  seconds = time.monotonic() - start
  lines = [
    json.loads(line)
    for _, out, _ in children
    for line in out.splitlines()
    if line.startswith("{")
  ]
  stderr = "\n".join(
    f"--- process {i} (exit {code}, {seconds:.0f} s):\n{err[-3000:]}"
    for i, (code, _, err) in enumerate(children)
  )
  if not lines:
    raise RuntimeError(f"the checkers produced no results:\n{stderr}")
  return {"lines": lines, "codes": [c[0] for c in children], "stderr": stderr}


# One pair per run, started in the background once the tests are collected
# (tests/conftest.py); the tests that read it run last.
BACKGROUND = {"results": _run_pair}


@pytest.fixture(scope="session")
def results(tmp_path_factory):
  return background_result(tmp_path_factory, f"{__name__}.results", _run_pair)


def _assert_group(results, group, minimum):
  assert_group(results, group, minimum, range(PROCESSES))


def test_two_processes_of_four_devices(results):
  _assert_group(results, "setup", 1)


def test_every_sharded_case_and_strategy_equals_one_device(results):
  # value, embedding gradients, hyper-parameter gradients; two meshes.
  cases = sum(len(multihost_checks.strategies(case.fn)) for case in SHARDED)
  _assert_group(results, "equality", 2 * 3 * cases + 1)


def test_every_registry_case_is_checked_with_every_strategy(results):
  labels = {r["label"] for r in results["lines"] if r["group"] == "equality"}
  for case in SHARDED:
    strategies = multihost_checks.strategies(case.fn)
    assert len(strategies) >= 2, case.id  # ring and all_gather today.
    for mesh in ("mesh (8,)", "mesh data 2 x model 4"):
      for strategy in strategies:
        assert f"{mesh}, {strategy}: {case.id}: value" in labels


def test_shard_wrapper_on_global_arrays(results):
  _assert_group(results, "shard_wrapper", 1)


def test_errors_across_processes(results):
  _assert_group(results, "errors", 9)


def test_children_exit_cleanly(results):
  assert results["codes"] == [0] * PROCESSES, results["stderr"]


def test_a_hung_process_is_killed_at_the_deadline(tmp_path):
  # The launcher's own guarantee: a child that never finishes (here: one of
  # two processes waits for a peer that never comes) is killed on time.
  start = time.monotonic()
  children = run_processes(
    lambda i: (
      [sys.executable, "-c", "import time; time.sleep(60)"]
      if i
      else [sys.executable, "-c", "pass"]
    ),
    PROCESSES,
    env=child_env(XLA_FLAGS),
    timeout=2,
    logdir=tmp_path,
  )
  assert time.monotonic() - start < 20
  assert children[0][0] == 0 and children[1][0] < 0, children
