"""The demo's parts run (in their quick configuration) and learn something.

Parts 1, 2 and 4 run in this process (one CPU device). Part 3 needs several
devices, and XLA reads the device count once, when jax starts, so it runs in
a child process (``python -m jaxloss_examples.demo --quick --parts sharded``)
with four simulated devices and XLA:CPU's fast-compile flags, and the test reads
the ``results.json`` it writes.
"""

import json
import os
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest

from jaxloss_examples import common, gallery, imbalanced, metric_learning
from tests.conftest import background_result

ROOT = pathlib.Path(__file__).resolve().parent.parent
FAST_COMPILE = (
  "--xla_backend_optimization_level=0 --xla_cpu_use_fusion_emitters=false "
  "--xla_cpu_parallel_codegen_split_count=1"
)
CHILD_XLA_FLAGS = "--xla_force_host_platform_device_count=4 " + FAST_COMPILE


def test_imbalanced_digits_every_loss_learns(tmp_path):
  recalls = imbalanced.run(
    tmp_path, progress=False, **common.QUICK["imbalanced"]
  )
  assert len(recalls) == 5
  balanced = {name: float(np.mean(r)) for name, r in recalls.items()}
  # A linear model on digits: far above chance (0.1) even on the long tail.
  assert min(balanced.values()) > 0.75, balanced
  report = (tmp_path / "imbalanced_digits.md").read_text()
  written = [
    float(x) for x in re.findall(r"\| (0\.\d+|1\.000) \|$", report, re.M)
  ]
  assert written == pytest.approx(list(balanced.values()), abs=1e-3)


def test_metric_learning_beats_the_untrained_network(tmp_path):
  accuracy = metric_learning.run(
    tmp_path, progress=False, **common.QUICK["metric"]
  )
  untrained = accuracy.pop("untrained")
  accuracy.pop("raw pixels (64-d, reference)")
  assert len(accuracy) == 3
  for name, value in accuracy.items():
    assert value > untrained + 0.15, (name, value, untrained)
  assert (tmp_path / "metric_learning.md").exists()


def _run_sharded_demo(out):
  env = dict(os.environ, XLA_FLAGS=CHILD_XLA_FLAGS, JAX_PLATFORMS="cpu")
  child = subprocess.run(
    [
      sys.executable,
      "-m",
      "jaxloss_examples.demo",
      "--quick",
      "--parts",
      "sharded",
      "--no-progress",
      "--out",
      str(out),
    ],
    cwd=ROOT,
    env=env,
    capture_output=True,
    text=True,
    timeout=480,  # beside the rest of the suite (tests/conftest.py)
  )
  assert child.returncode == 0, child.stderr[-4000:]
  assert (out / "sharded_contrastive.md").exists()
  return json.loads((out / "results.json").read_text())["sharded"]


# One child per run, started in the background once the tests are collected
# (tests/conftest.py); the three tests that read it run last.
BACKGROUND = {"sharded_results": _run_sharded_demo}


@pytest.fixture(scope="session")
def sharded_results(tmp_path_factory):
  return background_result(
    tmp_path_factory, f"{__name__}.sharded_results", _run_sharded_demo
  )


def test_sharded_losses_equal_single_device_losses(sharded_results):
  assert sharded_results["devices"] == 4
  rows = sharded_results["equality"]
  assert {(r[0], r[1]) for r in rows} == {
    (loss, strategy)
    for loss in ("CLIP", "SigLIP")
    for strategy in ("ring", "all_gather")
  }
  for loss, strategy, _, value_diff, grad_diff in rows:
    assert value_diff < 1e-5 and grad_diff < 1e-5, (loss, strategy)


def test_ring_needs_less_memory_than_all_gather(sharded_results):
  memory = {
    (loss, batch, strategy): size
    for loss, batch, strategy, size in sharded_results["memory"]
  }
  for (loss, batch, strategy), size in memory.items():
    if strategy == "ring":
      assert size < memory[loss, batch, "all_gather"] / 2, (loss, batch)


def test_sharded_training_learns_to_retrieve(sharded_results):
  retrieval = sharded_results["retrieval"]
  untrained = retrieval.pop("untrained")
  for name, value in retrieval.items():
    assert value > untrained + 0.02, (name, value, untrained)


def test_gallery_writes_one_small_png_per_family(tmp_path):
  paths = gallery.run(tmp_path, progress=False)
  assert len(paths) == len(gallery.FAMILIES) >= 8
  index = (tmp_path / "index.md").read_text()
  for path in paths:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert 5_000 < path.stat().st_size < 150_000, path
    assert f"]({path.name})" in index


def test_committed_gallery_lists_every_family():
  index = (ROOT / "docs" / "gallery" / "index.md").read_text()
  names = [f().name for f in gallery.FAMILIES]
  for name in names:
    assert (ROOT / "docs" / "gallery" / f"{name}.png").exists(), name
  assert sorted(re.findall(r"\]\((\w+)\.png\)", index)) == sorted(names)


@pytest.mark.xdist_group("multihost_example")
def test_multihost_example_sharded_equals_one_device():
  # The one command of docs/distributed.md, small: 2 processes x 2 devices,
  # 3 steps; the example kills its workers itself after --timeout seconds.
  env = dict(os.environ, XLA_FLAGS=FAST_COMPILE)
  child = subprocess.run(
    [
      sys.executable,
      "-m",
      "jaxloss_examples.multihost",
      "--processes",
      "2",
      "--steps",
      "3",
      "--batch-per-process",
      "16",
      "--timeout",
      "120",
    ],
    cwd=ROOT,
    env=env,
    capture_output=True,
    text=True,
    timeout=180,
  )
  assert child.returncode == 0, child.stdout[-2000:] + child.stderr[-4000:]
  assert "sharded loss = one-device loss" in child.stdout, child.stdout
  assert "3 steps on 4 devices in 2 processes" in child.stdout, child.stdout
