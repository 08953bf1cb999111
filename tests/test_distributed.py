"""jaxloss.distributed on 8 simulated CPU devices, in a child process.

The rest of the suite keeps one CPU device, and XLA reads the device count
once, when jax is first imported; so the checks (tests/distributed_checks.py)
run in their own process with ``--xla_force_host_platform_device_count=8``
and report one JSON line per check, and each test here asserts on one group
of them. Every check compares a sharded loss with the single-device jaxloss
loss on the concatenated batch (value and gradients; float64 at 1e-10 and
float32 at 1e-5), so the references are the tested single-device losses.

The child also lowers XLA:CPU's optimisation level and turns off its fusion
emitters: both only change how fast the tiny test programs compile (about
2.5× faster), and the two sides of every comparison are compiled alike.
"""

import json
import os
import pathlib
import subprocess
import sys

import pytest

import jaxloss
from tests.child_report import assert_group
from tests.conftest import background_result

ROOT = pathlib.Path(__file__).resolve().parent.parent
XLA_FLAGS = (
  "--xla_force_host_platform_device_count=8 "
  "--xla_backend_optimization_level=0 "
  "--xla_cpu_use_fusion_emitters=false "
  "--xla_cpu_parallel_codegen_split_count=1"
)
TIMEOUT = 600  # seconds; about 70 s of CPU, beside the rest of the suite.


def _run_checks(workdir):
  env = dict(os.environ, XLA_FLAGS=XLA_FLAGS, JAX_PLATFORMS="cpu")
  env["PYTHONPATH"] = os.pathsep.join(
    [str(ROOT)] + [p for p in [env.get("PYTHONPATH")] if p]
  )
  child = subprocess.run(
    [sys.executable, "-m", "tests.distributed_checks"],
    cwd=ROOT,
    env=env,
    capture_output=True,
    text=True,
    timeout=TIMEOUT,
  )
  lines = [
    json.loads(line)
    for line in child.stdout.splitlines()
    if line.startswith("{")
  ]
  if not lines:
    raise RuntimeError(
      f"the checker produced no results (exit {child.returncode})"
      f":\n{child.stderr[-4000:]}"
    )
  return {
    "lines": lines,
    "returncode": child.returncode,
    "stderr": child.stderr,
  }


# One child per run, started in the background once the tests are collected
# (tests/conftest.py); the tests that read it run last.
BACKGROUND = {"results": _run_checks}


@pytest.fixture(scope="session")
def results(tmp_path_factory):
  return background_result(tmp_path_factory, f"{__name__}.results", _run_checks)


def _assert_group(results, group, minimum):
  assert_group(results, group, minimum)


def test_float64_values_and_gradients_equal_single_device(results):
  # Every function, both strategies, 1, 2, 3 and 8 devices, chunked and not.
  _assert_group(results, "float64", 127)


def test_float32_values_and_gradients_equal_single_device(results):
  _assert_group(results, "float32", 25)


def test_mesh_with_a_model_axis(results):
  _assert_group(results, "two_axis_mesh", 18)


def test_pmap(results):
  _assert_group(results, "pmap", 12)


def test_gradient_inside_shard_map(results):
  _assert_group(results, "grad_inside", 6)


def test_reductions(results):
  _assert_group(results, "reductions", 9)


def test_shard_wrapper(results):
  _assert_group(results, "shard_wrapper", 4)


def test_bad_options_raise_clear_errors(results):
  _assert_group(results, "errors", 12)


def test_default_chunking_meets_the_memory_targets(results):
  _assert_group(results, "default_memory", 4)


def test_vocab_parallel_cross_entropy_equals_single_device(results):
  # Meshes (8,), (2, 4), (4, 2); every option; values and gradients of
  # hidden, weight, bias, soft cap, class weights in float64 at 1e-10.
  _assert_group(results, "vocab_parallel", 79)


def test_vocab_parallel_cross_entropy_float32(results):
  _assert_group(results, "vocab_parallel_f32", 25)


def test_vocab_parallel_weight_slices(results):
  _assert_group(results, "vocab_parallel_slices", 11)


def test_vocab_parallel_log_probs(results):
  # Against the materialised formula on 3 meshes (6); 8 once the one-device
  # jaxloss.linear_log_probs is there to compare with too.
  _assert_group(results, "vocab_parallel_log_probs", 6)


def test_vocab_parallel_shard_wrapper_tied_embeddings_and_no_all_gather(
  results,
):
  _assert_group(results, "vocab_parallel_shard", 13)


def test_vocab_parallel_errors(results):
  _assert_group(results, "vocab_parallel_errors", 9)


# Issue 21 (H3): KTO, whose reference point is a mean over the global batch.
def test_kto_equals_single_device(results):
  # 6 variants on 8 and 3 devices (float64 1e-10), trl's per-device mean
  # would differ on these shards, the error outside shard_map.
  _assert_group(results, "kto", 15)


def test_kto_float32(results):
  _assert_group(results, "kto_f32", 12)


def test_checker_exit_status(results):
  assert results["returncode"] == 0, results["stderr"][-4000:]


def test_registry_covers_every_sharded_loss():
  # Read in this (one-device) process: the registry only describes inputs.
  import jaxloss.distributed as jd
  from tests.cases.distributed import SHARDED

  # The vocabulary-parallel and preference losses have their own checks
  # (vocab_parallel*, kto*, grpo).
  own_checks = {
    jd.linear_cross_entropy,
    jd.linear_log_probs,
    jd.kto_loss,
    jd.grpo_loss,
    jd.dino_loss,  # cluster*
    jd.swav_loss,
    jd.barlow_twins_loss,  # ssl_statistics
    jd.vicreg_loss,
    jd.load_balancing_loss,  # routing
    jd.router_z_loss,
  }
  losses = {getattr(jd, name) for name in jd.__all__} - {jd.shard}
  assert losses - own_checks == {case.fn for case in SHARDED}
  for case in SHARDED:
    assert case.reference is getattr(jaxloss, case.fn.__name__), case.id


def test_grpo_equals_single_device(results):
  # 10 settings (every loss type) on 8 and 3 devices, "sum", "none",
  # shard(grpo_loss) and the error outside shard_map.
  _assert_group(results, "grpo", 24)


# Issue 22 (S2): DINO's centre and SwAV's Sinkhorn sums over the global
# batch; shard() with per-argument batch axes.
def test_dino_and_swav_equal_single_device(results):
  # 5 variants each (where with uneven kept counts, weights, every
  # reduction) on meshes (8,), (2, 4) over data and over (data, model):
  # value, new centre, gradients of logits/scores and temperatures,
  # float64 1e-10; per-device statistics would differ; the errors outside
  # shard_map.
  _assert_group(results, "cluster", 34)


def test_shard_with_per_argument_batch_axes(results):
  # DINO (logits split on axis 1, centre replicated) and SwAV through
  # shard, Explicit and Auto meshes, batch_axes by hand, 5 errors.
  _assert_group(results, "cluster_shard", 8)


# Issue 22 (S1): Barlow Twins and VICReg with psum'd batch statistics.
def test_ssl_batch_statistics_equal_single_device(results):
  # 4 variants on meshes (8,) and (2, 4), unequal kept counts per device
  # (float64 1e-10, values and gradients), per-device statistics differ,
  # shard() for both, errors outside shard_map and for a global batch of 1.
  _assert_group(results, "ssl_statistics", 14)


# Issue 23 (H-C): the MoE router losses with the tokens sharded.
def test_router_losses_equal_single_device(results):
  # Load balancing (top-2; top-1 with a mask under which one device keeps
  # no token) and z-loss (with and without the mask), groups [2, 16, 4] on
  # mesh (8,): value and gradients, float64 1e-10; shard() for both; the
  # error outside shard_map.
  _assert_group(results, "routing", 7)
