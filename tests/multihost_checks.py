"""Checks of jaxloss.distributed across several processes, as on a pod.

tests/test_multihost.py starts this module twice (2 processes × 4 simulated
CPU devices, ``--xla_force_host_platform_device_count=4`` set before jax is
imported), joined by :func:`jax.distributed.initialize` on the loopback
address with gloo's CPU collectives. Every process builds every global input
with :func:`jax.make_array_from_process_local_data` from **its own rows
only**, runs the sharded losses of the registry (tests/cases/distributed.py,
every case, every strategy its loss has) on a global mesh, and compares the
value and the gradients with the one-device loss of the whole batch, which
it computes itself: replicated results whole, sharded gradients shard by
shard (the rows this process holds). Run by hand with::

  XLA_FLAGS=--xla_force_host_platform_device_count=4 \
      .venv/bin/python -m tests.multihost_checks PROCESS_ID 2 PORT

in two shells (process ids 0 and 1, the same free port). It prints one JSON
object per line, ``{"process", "group", "label", "ok", "detail"}``, and exits
non-zero if any check failed. Importing this module has no side effects
(pytest's --doctest-modules imports it in the one-device process).
"""

from __future__ import annotations

import functools
import sys
import time
import traceback
import typing

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import AxisType, Mesh, NamedSharding

import jaxloss
from jaxloss import distributed as jd
from tests.cases.distributed import SHARDED
from tests.child_report import Report
from tests.distributed_checks import (
  BATCH,
  CHUNK,
  VARIANTS,
  _losses,
  _value_and_grad,
)

PROCESSES = 2
LOCAL_DEVICES = 4
# float32 on both sides: |sharded − one-device| ≤ RTOL · max |one-device|,
# leaf by leaf: ~30 float32 roundings (measured: at most 6.5e-7).
RTOL = 4e-6
INIT_TIMEOUT = 60  # seconds for the processes to find each other.


def strategies(fn) -> tuple[str | None, ...]:
  """The strategies a sharded loss has: the values of its ``strategy``
  annotation (a ``Literal``); ``(None,)`` for a loss without one."""
  hint = typing.get_type_hints(fn).get("strategy")
  return typing.get_args(hint) if hint is not None else (None,)


STRATEGIES = [strategies(case.fn) for case in SHARDED]


def meshes() -> dict[str, tuple[Mesh, str]]:
  """``{label: (mesh, batch axis)}``: ``(8,)`` over both processes, and
  ``(2, 4)`` with ``data`` across the processes and ``model`` inside each
  (``jax.devices()`` lists process 0's devices first)."""
  devices = np.array(jax.devices())
  return {
    "mesh (8,)": (
      Mesh(devices, ("data",), axis_types=(AxisType.Auto,)),
      "data",
    ),
    "mesh data 2 x model 4": (
      Mesh(
        devices.reshape(PROCESSES, LOCAL_DEVICES),
        ("data", "model"),
        axis_types=(AxisType.Auto,) * 2,
      ),
      "data",
    ),
  }


def local_rows(sharding: NamedSharding, shape) -> slice:
  """The rows of a global array of ``shape`` that this process's devices
  hold under ``sharding`` (one contiguous block: the process's slice)."""
  spans = {
    (index[0].start or 0, shape[0] if index[0].stop is None else index[0].stop)
    for index in sharding.addressable_devices_indices_map(shape).values()
  }
  lo, hi = min(s for s, _ in spans), max(e for _, e in spans)
  covered = set().union(*(range(s, e) for s, e in spans))
  assert covered == set(range(lo, hi)), f"not one block of rows: {spans}"
  return slice(lo, hi)


def to_global(tree, mesh: Mesh, axis: str):
  """Every leaf of ``tree`` (the whole batch, known here only to build the
  reference) as a global array made from this process's rows alone:
  rank ≥ 1 split over ``axis`` along axis 0, rank 0 replicated."""

  def one(x):
    x = np.asarray(x)
    sharding = NamedSharding(mesh, jax.P(axis) if x.ndim else jax.P())
    local = x[local_rows(sharding, x.shape)] if x.ndim else x
    return jax.make_array_from_process_local_data(sharding, local, x.shape)

  return jax.tree.map(one, tree)


# --------------------------------------------------------------------------- #
# harness


def _relative(got, want):
  """The leaf check across processes: each shard this process holds, its
  error relative to the whole expected leaf's largest entry."""
  scale = float(np.max(np.abs(want))) if want.size else 0.0
  worst, problems = 0.0, []
  for shard in got.addressable_shards:
    part = np.asarray(shard.data, np.float64)
    error = float(np.max(np.abs(part - want[shard.index]), initial=0.0))
    relative = error / scale if scale else error
    worst = max(worst, relative)
    if not relative <= RTOL:  # NaN fails too.
      problems.append(
        f"rows {shard.index[0] if got.ndim else ()}: max |error| "
        f"{error:.3g}, max |expected| {scale:.3g}"
      )
  return worst, problems


# --------------------------------------------------------------------------- #
# check groups


def _whole_batch():
  """The global float32 inputs of every variant (the same in every process:
  one seed) and their one-device values and gradients."""
  inputs = [
    v.inputs(np.random.default_rng(1000 + k), np.float32)
    for k, v in enumerate(VARIANTS)
  ]
  every = tuple(range(len(VARIANTS)))
  here = jax.device_put(inputs, jax.local_devices()[0])  # one device.
  want = jax.jit(_value_and_grad(functools.partial(_losses, every)))(
    *zip(*here)
  )
  return inputs, jax.device_get(want)


def _step(mesh, axis, strategy, which):
  """jit(value_and_grad(shard_map(cases))), gradients taken outside."""
  spec = jax.P(axis)
  options = {} if strategy is None else {"strategy": strategy}
  losses = jax.shard_map(
    functools.partial(
      _losses, which, axis_name=axis, chunk_size=CHUNK, **options
    ),
    mesh=mesh,
    in_specs=(spec, spec, jax.P()),
    out_specs=jax.P(),
  )
  return jax.jit(_value_and_grad(losses))


def check_equality(report, inputs, want):
  """Every case × every strategy of its loss × both meshes: one compiled
  program per mesh and strategy (the cases' inputs are disjoint, so the
  gradient of the sum is each case's gradient)."""
  group = "equality"
  for label, (mesh, axis) in meshes().items():
    for strategy in sorted({s for ss in STRATEGIES for s in ss}, key=str):
      which = tuple(k for k, ss in enumerate(STRATEGIES) if strategy in ss)
      step = _step(mesh, axis, strategy, which)
      args = to_global(tuple(zip(*[inputs[k] for k in which])), mesh, axis)
      (_, values), (d_diff, d_params) = step(*args)
      (_, want_values), (want_diff, want_params) = want
      for i, k in enumerate(which):
        name = f"{label}, {strategy}: {VARIANTS[k].name}"
        report.close(
          group, f"{name}: value", values[i], want_values[k], _relative
        )
        report.close(
          group,
          f"{name}: embedding gradients",
          d_diff[i],
          want_diff[k],
          _relative,
        )
        report.close(
          group,
          f"{name}: hyper-parameter gradients",
          d_params[i],
          want_params[k],
          _relative,
        )
  # The comparison can fail: the loss of this process's rows alone (what a
  # mesh of its own devices gives) is another number.
  sharding = NamedSharding(meshes()["mesh (8,)"][0], jax.P("data"))
  mine = lambda tree: jax.tree.map(
    lambda x: x[local_rows(sharding, x.shape)], tree
  )
  d, o, p = inputs[0]
  local = float(VARIANTS[0].loss(mine(d), mine(o), p))
  global_ = float(want[0][1][0])
  report.add(
    group,
    f"control: {VARIANTS[0].name} of this process's rows alone differs",
    abs(local - global_) > 1e3 * RTOL * abs(global_),
    f"local {local:.6f} vs global {global_:.6f}",
  )


def check_shard_wrapper(report):
  """The docs' recipe: ``jd.shard`` under ``jit`` on global arrays."""
  group = "shard_wrapper"
  rng = np.random.default_rng(7)
  x, y = (rng.normal(size=(BATCH, 8)).astype(np.float32) for _ in range(2))
  t = np.float32(0.1)
  want = jax.device_get(
    jax.value_and_grad(
      lambda x, y, t: jaxloss.clip_loss(x, y, temperature=t, reduction="mean"),
      argnums=(0, 1, 2),
    )(x, y, t)
  )
  mesh, axis = meshes()["mesh (8,)"]
  clip = jd.shard(jd.clip_loss, mesh, axis)
  step = jax.jit(
    jax.value_and_grad(
      lambda x, y, t: clip(x, y, temperature=t, chunk_size=2), argnums=(0, 1, 2)
    )
  )
  got = step(*to_global((x, y, t), mesh, axis))
  report.close(
    group, "jit(value_and_grad(shard(clip_loss)))", got, want, _relative
  )


def _raises(report, group, label, fn, error, *needles):
  try:
    fn()
  except error as e:
    missing = [n for n in needles if n not in str(e)]
    report.add(
      group,
      label,
      not missing,
      f"missing {missing}: {e}"[:400] if missing else str(e)[:400],
    )
  except Exception as e:
    report.add(
      group,
      label,
      False,
      f"{type(e).__name__}, not {error.__name__}: {e}"[:400],
    )
  else:
    report.add(group, label, False, "no error raised")


def check_errors(report):
  """What can go wrong across processes, and its error."""
  group = "errors"
  rank = jax.process_index()
  mesh, axis = meshes()["mesh (8,)"]
  rng = np.random.default_rng(3)
  x = rng.normal(size=(BATCH, 4)).astype(np.float32)
  labels = rng.integers(0, 3, BATCH).astype(np.int32)
  where = rng.random(BATCH) > 0.2
  gx, glabels, gwhere = to_global((x, labels, where), mesh, axis)
  mine = local_rows(NamedSharding(mesh, jax.P(axis)), x.shape)

  # 1. Local batches of different sizes: the documented check (the global
  # shapes each process would infer differ, and nothing inside a loss can
  # see the other processes' shapes) fails in every process.
  local = x[mine]
  multihost_utils.assert_equal(local.shape, "equal local batches")
  report.add(group, "equal local batches pass the documented check", True)
  short = local[: len(local) - 2 * rank]  # process 1 holds 2 fewer rows.
  _raises(
    report,
    group,
    "a shorter local batch on process 1 fails the documented check, "
    "in every process",
    lambda: multihost_utils.assert_equal(
      short.shape, "local batch sizes differ across processes"
    ),
    AssertionError,
    "local batch sizes differ",
  )

  # 2. Labels or masks not sharded like the embeddings.
  _raises(
    report,
    group,
    "shard_map: replicated labels with sharded embeddings",
    lambda: jax.eval_shape(
      jax.shard_map(
        lambda v, l: jd.supervised_contrastive_loss(v, l, axis_name=axis),
        mesh=mesh,
        in_specs=(jax.P(axis), jax.P()),
        out_specs=jax.P(),
      ),
      gx,
      glabels,
    ),
    ValueError,
    "supervised_contrastive_loss",
    "labels",
  )
  _raises(
    report,
    group,
    "shard_map: replicated where with sharded embeddings",
    lambda: jax.eval_shape(
      jax.shard_map(
        lambda v, w: jd.clip_loss(v, v, where=w, axis_name=axis),
        mesh=mesh,
        in_specs=(jax.P(axis), jax.P()),
        out_specs=jax.P(),
      ),
      gx,
      gwhere,
    ),
    ValueError,
    "clip_loss",
    "where",
  )
  _raises(
    report,
    group,
    "shard: process-local labels with global embeddings",
    lambda: jd.shard(jd.supervised_contrastive_loss, mesh, axis)(
      gx, labels[mine]
    ),
    ValueError,
    "supervised_contrastive_loss",
    "labels",
    "make_array_from_process_local_data",
  )
  _raises(
    report,
    group,
    "shard: process-local where with global embeddings",
    lambda: jd.shard(jd.clip_loss, mesh, axis)(
      gx, gx, where=jnp.asarray(where)
    ),
    ValueError,
    "clip_loss",
    "where",
  )
  # Sharded, as the registry's inputs are, it is the one-device loss.
  got = jd.shard(jd.supervised_contrastive_loss, mesh, axis)(
    gx, glabels, where=gwhere
  )
  want = jaxloss.supervised_contrastive_loss(
    x, labels, where=where, reduction="mean"
  )
  report.close(
    group, "shard: labels and where sharded like x", got, want, _relative
  )

  # 3. A mesh that does not cover every process.
  own = Mesh(np.array(jax.local_devices()), ("data",))
  first = Mesh(np.array(jax.devices()[:LOCAL_DEVICES]), ("data",))
  for label, bad in [("this process's devices", own), ("process 0's", first)]:
    _raises(
      report,
      group,
      f"shard over a mesh of {label} only",
      lambda bad=bad: jd.shard(jd.siglip_loss, bad, "data"),
      ValueError,
      "siglip_loss",
      "mesh",
      "jax.devices()",
    )


GROUPS = {
  "equality": lambda report: check_equality(report, *_whole_batch()),
  "shard_wrapper": check_shard_wrapper,
  "errors": check_errors,
}


def main(argv):
  process_id, num_processes, port = (int(a) for a in argv[:3])
  groups = argv[3:] or list(GROUPS)
  start = time.perf_counter()
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.config.update("jax_numpy_rank_promotion", "raise")
  jax.distributed.initialize(
    coordinator_address=f"127.0.0.1:{port}",
    num_processes=num_processes,
    process_id=process_id,
    initialization_timeout=INIT_TIMEOUT,
  )
  report = Report()
  setup = (jax.process_count(), jax.local_device_count(), jax.device_count())
  expected = (PROCESSES, LOCAL_DEVICES, PROCESSES * LOCAL_DEVICES)
  report.add(
    "setup",
    "2 processes x 4 devices",
    setup == expected,
    f"processes, local devices, devices = {setup}; "
    f"{time.perf_counter() - start:.1f} s to initialise",
  )
  if setup != expected:
    return 1
  for name in groups:
    began = time.perf_counter()
    try:
      GROUPS[name](report)
    except Exception:
      report.add(name, "group crashed", False, traceback.format_exc()[-2000:])
    report.add(name, "time", True, f"{time.perf_counter() - began:.1f} s")
  # Leave together: a process that exits while the other still computes
  # would break its collectives.
  multihost_utils.sync_global_devices("multihost_checks done")
  report.add("total", "time", True, f"{time.perf_counter() - start:.1f} s")
  return 1 if report.failed else 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
