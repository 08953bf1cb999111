"""Checks of jaxloss.distributed on 8 simulated CPU devices, run in a child
process by tests/test_distributed.py (the rest of the suite keeps one device).

Every sharded loss is compared, in value and gradient, with the single-device
jaxloss loss on the concatenated batch. Run by hand with::

  XLA_FLAGS=--xla_force_host_platform_device_count=8 \
      .venv/bin/python -m tests.distributed_checks [group ...]

It prints one JSON object per line, ``{"group", "label", "ok", "detail"}``,
and exits non-zero if any check failed. Importing this module has no side
effects (pytest's --doctest-modules imports it in the one-device process).
"""

from __future__ import annotations

import functools
import sys
import time
import traceback
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import AxisType, Mesh

import jaxloss
from jaxloss import distributed as jd
from tests.cases.distributed import SHARDED, ShardedCase
from tests.child_report import Report

DEVICES = 8
BATCH = 24  # global batch: per-device 24, 12, 8, 3 on 1, 2, 3, 8 devices.
DIM = 4
CHUNK = 5  # divides none of the per-device batches: the last chunk is padded.
TOLERANCE = {
  np.float64: dict(rtol=1e-10, atol=1e-12),
  np.float32: dict(rtol=1e-5, atol=1e-6),
}
STRATEGIES = ("ring", "all_gather")


class Variant(NamedTuple):
  """A registry case (tests/cases/distributed.py) made callable by the
  checks. ``loss(diff, other, params, **sharded)`` calls the one-device loss
  (``sharded`` empty) or the sharded one; ``diff`` are differentiated arrays,
  ``other`` not, both split over the devices along axis 0; ``params`` are
  replicated learned scalars. ``inputs(rng, dtype) -> (diff, other,
  params)``."""

  name: str
  loss: Callable
  inputs: Callable


def _variant(case: ShardedCase) -> Variant:
  """The case's arrays sorted into ``(diff, other, params)``; the layout (and
  the ``None`` arguments) is read once, from inputs of the global batch."""
  args, kwargs = case.make_inputs(np.random.default_rng(0), BATCH)
  nones = [i for i, a in enumerate(args) if a is None]
  others = [
    i for i, a in enumerate(args) if a is not None and i not in case.float_args
  ]
  learned = [k for k, v in kwargs.items() if np.ndim(v) == 0]
  sharded = [k for k in kwargs if k not in learned]

  def loss(diff, other, params, **options):
    fn = case.fn if "axis_name" in options else case.reference
    full = dict(zip(case.float_args, diff))
    full.update(zip(others, other[0]))
    full.update(dict.fromkeys(nones))
    return fn(
      *(full[i] for i in range(len(args))),
      **dict(zip(sharded, other[1])),
      **dict(zip(learned, params)),
      **case.options,
      **{"reduction": "mean", **options},
    )

  def inputs(rng, dtype):
    args, kwargs = case.make_inputs(rng, BATCH)

    def cast(x):
      x = np.asarray(x)
      return jnp.asarray(
        x, dtype if np.issubdtype(x.dtype, np.floating) else None
      )

    return (
      tuple(cast(args[i]) for i in case.float_args),
      (
        tuple(cast(args[i]) for i in others),
        tuple(cast(kwargs[k]) for k in sharded),
      ),
      tuple(cast(kwargs[k]) for k in learned),
    )

  return Variant(case.id, loss, inputs)


VARIANTS = [_variant(case) for case in SHARDED]

# --------------------------------------------------------------------------- #
# harness


def _within(dtype):
  """The leaf check of ``dtype``'s tolerance (``atol + rtol·|expected|``)."""
  tol = TOLERANCE[dtype]

  def check(got, want):
    error = np.abs(np.asarray(got, np.float64) - want)
    if np.all(error <= tol["atol"] + tol["rtol"] * np.abs(want)):
      return float(error.max(initial=0.0)), []
    return float(error.max()), [
      f"max |error| {error.max():.3g}, max |expected| {np.abs(want).max():.3g}"
    ]

  return check


def _mesh(n, names=("data",), shape=None, types=AxisType.Auto):
  devices = np.array(jax.devices()[:n]).reshape(shape or (n,))
  return Mesh(devices, names, axis_types=(types,) * len(names))


# Compiling is most of the cost, so each program runs several variants at
# once (their inputs are disjoint: the gradient of the sum of their losses
# with respect to one variant's inputs is that variant's gradient), and the
# full set runs on 8 devices, one variant per function elsewhere.
ALL = tuple(range(len(VARIANTS)))


def _first_case_of_each_loss() -> tuple[int, ...]:
  first: dict = {}
  for k, case in enumerate(SHARDED):
    first.setdefault(case.fn, k)
  return tuple(first.values())


ONE_EACH = _first_case_of_each_loss()  # clip, siglip, infonce, supcon, mnr.
FEW = tuple(  # clip, siglip (no log-sum-exp), supcon (labels travel).
  k
  for k in ONE_EACH
  if SHARDED[k].fn
  in (jd.clip_loss, jd.siglip_loss, jd.supervised_contrastive_loss)
)


def _inputs(dtype, seed=0):
  """``[(diff, other, params)]`` of every variant, in float ``dtype``."""
  rng = np.random.default_rng(seed)
  return [variant.inputs(rng, dtype) for variant in VARIANTS]


def _losses(which, diffs, others, params, **options):
  return [
    VARIANTS[k].loss(d, o, p, **options)
    for k, d, o, p in zip(which, diffs, others, params)
  ]


def _value_and_grad(losses):
  """``(diffs, others, params) -> ((total, values), (d_diffs, d_params))``."""

  def total(diffs, others, params):
    values = losses(diffs, others, params)
    return sum(values), values

  return jax.value_and_grad(total, argnums=(0, 2), has_aux=True)


@jax.jit
def _reference(inputs):
  """Single-device values and gradients of every variant."""
  return _value_and_grad(functools.partial(_losses, ALL))(*zip(*inputs))


def _sharded_step(mesh, axis, strategy, which, chunk_size=CHUNK):
  """jit(value_and_grad(shard_map(variants))), gradients taken outside."""
  spec = jax.P(axis)
  losses = jax.shard_map(
    functools.partial(
      _losses, which, axis_name=axis, strategy=strategy, chunk_size=chunk_size
    ),
    mesh=mesh,
    in_specs=(spec, spec, jax.P()),
    out_specs=jax.P(),
    check_vma=True,
  )
  return jax.jit(_value_and_grad(losses))


def _compare(report, group, prefix, which, got, want, dtype):
  """Values, then gradients, variant by variant (``want``: all variants)."""
  (_, got_values), (got_d, got_p) = got
  (_, want_values), (want_d, want_p) = want
  for i, k in enumerate(which):
    label = f"{prefix} {VARIANTS[k].name}"
    report.close(
      group, f"{label}: value", got_values[i], want_values[k], _within(dtype)
    )
    report.close(
      group,
      f"{label}: embedding gradients",
      got_d[i],
      want_d[k],
      _within(dtype),
    )
    report.close(
      group,
      f"{label}: hyper-parameter gradients",
      got_p[i],
      want_p[k],
      _within(dtype),
    )


def _run(report, group, prefix, step, which, inputs, want, dtype):
  got = step(*zip(*[inputs[k] for k in which]))
  _compare(report, group, prefix, which, got, want, dtype)


# --------------------------------------------------------------------------- #
# check groups


def check_equality(report, dtype, plan):
  """``plan``: ``[(devices, strategy, variants, chunk_size)]``."""
  group = np.dtype(dtype).name
  inputs = _inputs(dtype)
  want = _reference(inputs)
  for n, strategy, which, chunk in plan:
    _run(
      report,
      group,
      f"{n} devices, {strategy}, chunk_size={chunk}:",
      _sharded_step(_mesh(n), "data", strategy, which, chunk),
      which,
      inputs,
      want,
      dtype,
    )
  # The comparison can fail: the mean of per-device single-device losses
  # (what forgetting the other devices' negatives gives) is another number.
  d, o, p = inputs[0]
  part = lambda tree, k: jax.tree.map(lambda x: x[3 * k : 3 * k + 3], tree)
  local = np.mean(
    [VARIANTS[0].loss(part(d, k), part(o, k), p) for k in range(8)]
  )
  global_ = float(want[0][1][0])
  report.add(
    group,
    "control: local-only CLIP differs from the global loss",
    abs(float(local) - global_) > 1e-3,
    f"local {float(local):.6f} vs global {global_:.6f}",
  )


FLOAT64_PLAN = [
  (8, "ring", ALL, CHUNK),
  (8, "all_gather", ALL, CHUNK),
  (3, "ring", ONE_EACH, CHUNK),
  (3, "all_gather", ONE_EACH, CHUNK),
  (2, "ring", ONE_EACH, None),
  (2, "all_gather", FEW, None),  # whole blocks
  (1, "ring", ONE_EACH, CHUNK),
  (1, "all_gather", FEW, CHUNK),
]  # / dense.
FLOAT32_PLAN = [(8, "ring", ONE_EACH, CHUNK), (3, "all_gather", FEW, CHUNK)]


def check_two_axis_mesh(report):
  group = "two_axis_mesh"
  inputs = _inputs(np.float64)
  want = _reference(inputs)
  mesh = _mesh(8, ("data", "model"), (4, 2))
  for axis, strategy, which in [
    ("data", "ring", FEW),
    ("data", "all_gather", (0,)),
    (("data", "model"), "ring", (0, 1)),
  ]:
    _run(
      report,
      group,
      f"data 4 x model 2, batch over {axis}, {strategy}:",
      _sharded_step(mesh, axis, strategy, which),
      which,
      inputs,
      want,
      np.float64,
    )


def check_pmap(report):
  """jax.pmap with the same axis_name; gradients outside pmap."""
  group = "pmap"
  inputs = _inputs(np.float64)
  want = _reference(inputs)
  split = lambda tree: jax.tree.map(
    lambda x: x.reshape((DEVICES, -1) + x.shape[1:]), tree
  )
  for strategy, which in [("ring", (0, 4)), ("all_gather", (1,))]:
    mapped = jax.pmap(
      lambda d, o, p: jnp.stack(
        _losses(which, d, o, p, axis_name="i", strategy=strategy, chunk_size=2)
      ),
      axis_name="i",
      in_axes=(0, 0, None),
    )

    def losses(d, o, p):
      per_device = mapped(split(d), split(o), p)  # [devices, variants]
      return list(jnp.mean(per_device, axis=0)), per_device

    def total(d, o, p):
      mean, per_device = losses(d, o, p)
      return sum(mean), (mean, per_device)

    (_, (mean, per_device)), grads = jax.value_and_grad(
      total, argnums=(0, 2), has_aux=True
    )(*zip(*[inputs[k] for k in which]))
    per_device = np.asarray(per_device)
    report.add(
      group,
      f"{strategy}: the loss is the same on every device",
      bool(np.all(np.abs(per_device - per_device[:1]) <= 1e-12)),
    )
    _compare(
      report,
      group,
      f"8 devices, {strategy}:",
      which,
      ((None, mean), grads),
      want,
      np.float64,
    )
  # jax.grad inside pmap differentiates every device's copy of the
  # replicated loss: D times the global gradient (as docs/distributed.md says).
  d, o, p = inputs[0]
  inner = jax.pmap(
    jax.grad(
      lambda d, o, p: VARIANTS[0].loss(d, o, p, axis_name="i", chunk_size=2)
    ),
    axis_name="i",
    in_axes=(0, 0, None),
  )
  got = jax.tree.map(
    lambda g: g.reshape((-1,) + g.shape[2:]), inner(split(d), split(o), p)
  )
  report.close(
    group,
    "ring: clip_loss, grad inside pmap = 8 x the gradient",
    got,
    jax.tree.map(lambda w: DEVICES * w, want[1][0][0]),
    _within(np.float64),
  )


def check_grad_inside(report):
  """jax.grad inside shard_map (check_vma on) equals the outside gradient."""
  group = "grad_inside"
  inputs = _inputs(np.float64)
  want = _reference(inputs)
  spec = jax.P("data")
  which = (0, 1)
  losses = functools.partial(_losses, which, axis_name="data", chunk_size=CHUNK)
  step = jax.jit(
    jax.shard_map(
      _value_and_grad(losses),
      mesh=_mesh(DEVICES),
      in_specs=(spec, spec, jax.P()),
      out_specs=((jax.P(), jax.P()), (spec, jax.P())),
      check_vma=True,
    )
  )
  _run(
    report,
    group,
    "8 devices, ring, grad inside:",
    step,
    which,
    inputs,
    want,
    np.float64,
  )


def check_reductions(report):
  """ "none" (local values, sharded out), "sum" and "batchmean"."""
  group = "reductions"
  inputs = _inputs(np.float64)
  spec = jax.P("data")
  plans = {
    "ring": [(k, "none") for k in ONE_EACH] + [(0, "sum"), (4, "batchmean")],
    "all_gather": [(0, "none"), (1, "sum")],
  }
  for strategy, plan in plans.items():

    def local(inputs):
      return [
        VARIANTS[k].loss(
          *inputs[k],
          reduction=r,
          axis_name="data",
          strategy=strategy,
          chunk_size=CHUNK,
        )
        for k, r in plan
      ]

    got = jax.jit(
      jax.shard_map(
        local,
        mesh=_mesh(3),
        in_specs=([(spec, spec, jax.P())] * len(inputs),),
        out_specs=[spec if r == "none" else jax.P() for _, r in plan],
      )
    )(inputs)
    for (k, r), value in zip(plan, got):
      want = VARIANTS[k].loss(*inputs[k], reduction=r)
      report.close(
        group,
        f"3 devices, {strategy}: {VARIANTS[k].name}, reduction={r!r}",
        value,
        want,
        _within(np.float64),
      )


def check_shard_wrapper(report):
  """shard() on an Explicit mesh under jit and eagerly, on a 2-axis mesh,
  with a learned temperature and reduction="none"."""
  group = "shard_wrapper"
  rng = np.random.default_rng(6)
  x, y = (
    jnp.asarray(rng.normal(size=(BATCH, DIM)), jnp.float32) for _ in range(2)
  )
  labels = jnp.asarray(rng.integers(0, 4, BATCH))
  t = jnp.float32(0.2)
  explicit = _mesh(8, types=AxisType.Explicit)
  two_axis = _mesh(8, ("data", "model"), (4, 2), AxisType.Explicit)

  def clip(x, y, t):
    return jd.shard(jd.clip_loss, explicit)(x, y, temperature=t)

  got = jax.jit(jax.value_and_grad(clip, argnums=(0, 1, 2)))(x, y, t)
  want = jax.value_and_grad(
    lambda x, y, t: jaxloss.clip_loss(x, y, temperature=t, reduction="mean"),
    argnums=(0, 1, 2),
  )(x, y, t)
  report.close(
    group,
    "jit, Explicit mesh: clip_loss value and gradients",
    got,
    want,
    _within(np.float32),
  )
  got = jd.shard(jd.supervised_contrastive_loss, two_axis)(
    x, labels, strategy="all_gather", temperature=0.5, reduction="none"
  )
  want = jaxloss.supervised_contrastive_loss(x, labels, temperature=0.5)
  report.close(
    group,
    "eager, data x model mesh: supcon, reduction='none'",
    got,
    want,
    _within(np.float32),
  )
  siglip = functools.partial(
    jd.shard(jd.siglip_loss, _mesh(3), axis="data"), chunk_size=3
  )  # options static under jit.
  got = jax.jit(siglip)(x, y, logit_scale=t * 20)
  want = jaxloss.siglip_loss(x, y, logit_scale=t * 20, reduction="mean")
  report.close(
    group,
    "jit, Auto 3-device mesh: siglip_loss",
    got,
    want,
    _within(np.float32),
  )
  report.add(
    group,
    "float32 stays float32 under jax_enable_x64",
    got.dtype == jnp.float32,
    str(got.dtype),
  )


def check_default_memory(report):
  """Issue 18's target, compiled and not run: with the defaults
  (``chunk_size="auto"``), sharded CLIP and SigLIP at a global batch of
  65,536, dim 256, float32, on 8 devices, gradients with respect to both
  embeddings and the temperature / scale, need at most 1/100 of the
  per-device temporary memory of the dense all-gather strategy
  (``chunk_size=None``); the all-gather strategy's own default at most 1/20.
  """
  group = "default_memory"
  mesh = _mesh(8)
  embeddings = jax.ShapeDtypeStruct(
    (65536, 256), jnp.float32, sharding=jax.NamedSharding(mesh, jax.P("data"))
  )
  scalar = jax.ShapeDtypeStruct((), jnp.float32)

  def temp_mib(name, hyper, **options):
    sharded = jd.shard(getattr(jd, name), mesh)
    step = jax.value_and_grad(
      lambda x, y, t: sharded(x, y, **{hyper: t}, **options), argnums=(0, 1, 2)
    )
    compiled = jax.jit(step).lower(embeddings, embeddings, scalar).compile()
    return compiled.memory_analysis().temp_size_in_bytes / 2**20

  for name, hyper in (
    ("clip_loss", "temperature"),
    ("siglip_loss", "logit_scale"),
  ):
    dense = temp_mib(name, hyper, strategy="all_gather", chunk_size=None)
    for strategy, limit in (("ring", 100), ("all_gather", 20)):
      default = temp_mib(name, hyper, strategy=strategy)
      report.add(
        group,
        f"{name}, {strategy} default <= 1/{limit} of dense all_gather",
        default * limit <= dense,
        f"{default:.1f} MiB vs {dense:.1f} MiB (1/{dense / default:.0f})",
      )


def check_errors(report):
  """Bad options raise ValueError with a message that names the problem."""
  group = "errors"
  mesh = _mesh(2)
  x = jnp.zeros((4, DIM))

  def traced(fn):
    return lambda: jax.eval_shape(
      jax.shard_map(fn, mesh=mesh, in_specs=jax.P("data"), out_specs=jax.P()), x
    )

  cases = {
    "unknown strategy": (
      traced(lambda v: jd.clip_loss(v, v, axis_name="data", strategy="tree")),
      "strategy",
    ),
    "unknown reduction": (
      traced(lambda v: jd.siglip_loss(v, v, axis_name="data", reduction="avg")),
      "reduction",
    ),
    "chunk_size 0": (
      traced(lambda v: jd.infonce_loss(v, v, axis_name="data", chunk_size=0)),
      "chunk_size",
    ),
    "temperature <= 0": (
      traced(lambda v: jd.clip_loss(v, v, axis_name="data", temperature=0.0)),
      "temperature",
    ),
    "axis not in the shard_map": (
      traced(lambda v: jd.clip_loss(v, v, axis_name="batch")),
      "axis_name='batch'",
    ),
    "called outside shard_map": (
      lambda: jd.clip_loss(x, x, axis_name="data"),
      "shard_map",
    ),
    "labels of the wrong shape": (
      traced(
        lambda v: jd.supervised_contrastive_loss(
          v, jnp.zeros(3, int), axis_name="data"
        )
      ),
      "labels",
    ),
    "unknown similarity": (
      traced(
        lambda v: jd.multiple_negatives_ranking_loss(
          v, v, axis_name="data", similarity="l2"
        )
      ),
      "similarity",
    ),
    "shard of a single-device loss": (
      lambda: jd.shard(jaxloss.clip_loss, mesh),
      "jaxloss.distributed",
    ),
    "shard over an unknown axis": (
      lambda: jd.shard(jd.clip_loss, mesh, axis="model"),
      "model",
    ),
    "shard with axis_name": (
      lambda: jd.shard(jd.clip_loss, mesh)(x, x, axis_name="data"),
      "axis_name",
    ),
    "shard of a batch the devices do not divide": (
      lambda: jd.shard(jd.clip_loss, mesh)(x[:3], x[:3]),
      "multiple",
    ),
  }
  for label, (fn, needle) in cases.items():
    try:
      fn()
    except ValueError as error:
      report.add(group, label, needle in str(error), str(error)[:300])
    except Exception as error:
      report.add(
        group,
        label,
        False,
        f"{type(error).__name__} instead of ValueError: {error}"[:300],
      )
    else:
      report.add(group, label, False, "no error raised")


# --------------------------------------------------------------------------- #
# vocabulary-parallel linear cross-entropy and log-probabilities

VP_BATCH, VP_TIME, VP_DIM, VP_VOCAB = 8, 2, 6, 64  # 16 tokens, [8, 2] labels.
VP_CHUNK = 3  # tokens per chunk: 16, 8 and 4 local tokens leave a remainder.
# (mesh shape, axis names, token axis): tokens replicated on the (8,) mesh.
VP_MESHES = (
  ((8,), ("model",), None),
  ((2, 4), ("data", "model"), "data"),
  ((4, 2), ("data", "model"), "data"),
)
VP_DIFF = ("hidden", "weight", "bias", "logit_soft_cap", "class_weights")


class VpVariant(NamedTuple):
  """One call of the cross-entropy: ``options`` (static), and which of the
  optional arrays (bias, where, weights, soft cap, class weights) it takes."""

  name: str
  arrays: tuple[str, ...]
  options: dict


VP_VARIANTS = (
  VpVariant("ignore_index -100, mean", (), {}),
  VpVariant(
    "bias, where, weights, smoothing 0.1, z_loss 1e-3, traced soft cap, mean",
    ("bias", "where", "weights", "logit_soft_cap"),
    dict(label_smoothing=0.1, z_loss=1e-3),
  ),
  VpVariant(
    "class_weights, smoothing 0.2, mean",
    ("class_weights",),
    dict(label_smoothing=0.2),
  ),
  VpVariant(
    "class_weights, bias, where, filter_eps 1e-30 (no slice skipped), sum",
    ("class_weights", "bias", "where"),
    dict(reduction="sum", filter_eps=1e-30),
  ),
  VpVariant(
    "bias, traced soft cap, z_loss, smoothing, none",
    ("bias", "logit_soft_cap"),
    dict(reduction="none", z_loss=1e-3, label_smoothing=0.1),
  ),
  VpVariant("weights, batchmean", ("weights",), dict(reduction="batchmean")),
)


def _vp_inputs(rng, dtype, vocab=VP_VOCAB, dim=VP_DIM):
  """Global arrays of one variant: labels in every shard's range, a few
  -100 (ignored) and some masked out by ``where``."""
  shape = (VP_BATCH, VP_TIME)
  labels = rng.integers(0, vocab, shape)
  labels[rng.random(shape) < 0.2] = -100
  labels[0, 0], labels[1, 0] = 0, vocab - 1  # the first and last shard.
  f = lambda *s, scale=1.0: jnp.asarray(rng.normal(size=s) * scale, dtype)
  return dict(
    hidden=f(*shape, dim),
    weight=f(dim, vocab, scale=1.5),
    bias=f(vocab, scale=0.5),
    logit_soft_cap=jnp.asarray(4.0, dtype),
    class_weights=jnp.asarray(rng.uniform(0.2, 2.0, vocab), dtype),
    labels=jnp.asarray(labels),
    where=jnp.asarray(rng.random(shape) < 0.8),
    weights=jnp.asarray(rng.uniform(0.5, 1.5, shape), dtype),
    cotangent=jnp.asarray(rng.normal(size=shape), dtype),  # for "none".
  )


def _vp_split(variant: VpVariant, inputs: dict):
  """``(diff, other)``: the differentiated arrays and the rest."""
  used = ("hidden", "weight", "labels") + variant.arrays
  diff = {k: inputs[k] for k in VP_DIFF if k in used}
  other = {k: inputs[k] for k in used if k not in diff}
  if variant.options.get("reduction") == "none":
    other["cotangent"] = inputs["cotangent"]
  return diff, other


def _vp_scalar(values, other, reduction):
  """The differentiated scalar: the loss, or Σ cotangent · values."""
  if reduction == "none":
    return jnp.sum(values * other["cotangent"])
  return values


def _vp_reference(variant: VpVariant, dtype_inputs):
  """One-device ``jaxloss.linear_cross_entropy`` (default chunk_size: one
  dense block, plain autodiff) on the global arrays."""
  diff, other = dtype_inputs
  reduction = variant.options.get("reduction", "mean")

  def scalar(diff):
    args = {**diff, **other}
    args.pop("cotangent", None)
    values = jaxloss.linear_cross_entropy(
      args.pop("hidden"),
      args.pop("weight"),
      args.pop("labels"),
      **args,
      **variant.options,
    )
    return _vp_scalar(values, other, reduction), values

  return jax.value_and_grad(scalar, has_aux=True)(diff)


def _vp_spec(name, x, token_spec):
  if name == "weight":
    return jax.P(None, "model")
  if name in ("bias", "class_weights"):
    return jax.P("model")
  if x.ndim == 0:
    return jax.P()
  return token_spec


def _vp_sharded(variant: VpVariant, mesh, token_axis, inputs, chunk_size):
  """``value_and_grad`` (outside) of the vocabulary-parallel loss inside
  ``shard_map`` (check_vma on) over ``mesh``."""
  diff, other = inputs
  reduction = variant.options.get("reduction", "mean")
  token_spec = jax.P(token_axis)
  names = list(diff) + [k for k in other if k != "cotangent"]
  specs = tuple(_vp_spec(k, {**diff, **other}[k], token_spec) for k in names)

  def local(*arrays):
    args = dict(zip(names, arrays))
    return jd.linear_cross_entropy(
      args.pop("hidden"),
      args.pop("weight"),
      args.pop("labels"),
      vocab_axis="model",
      token_axis=token_axis,
      chunk_size=chunk_size,
      **args,
      **variant.options,
    )

  loss = jax.shard_map(
    local,
    mesh=mesh,
    in_specs=specs,
    out_specs=token_spec if reduction == "none" else jax.P(),
    check_vma=True,
  )

  def scalar(diff):
    full = {**diff, **other}
    values = loss(*(full[k] for k in names))
    return _vp_scalar(values, other, reduction), values

  return jax.value_and_grad(scalar, has_aux=True)(diff)


def _vp_compare(report, group, prefix, variants, got, want, dtype):
  for variant, g, w in zip(variants, got, want):
    (_, g_values), g_grads = g
    (_, w_values), w_grads = w
    label = f"{prefix} {variant.name}"
    report.close(group, f"{label}: value", g_values, w_values, _within(dtype))
    for k in w_grads:
      report.close(
        group, f"{label}: d{k}", g_grads[k], w_grads[k], _within(dtype)
      )


def _vp_all_inputs(dtype, seed=20):
  rng = np.random.default_rng(seed)
  return [_vp_split(v, _vp_inputs(rng, dtype)) for v in VP_VARIANTS]


def check_vocab_parallel(report, dtype=np.float64):
  """Every option, three meshes, values and gradients against the one-device
  loss on the gathered arrays (one compiled program per mesh)."""
  group = "vocab_parallel" if dtype == np.float64 else "vocab_parallel_f32"
  inputs = _vp_all_inputs(dtype)
  want = jax.jit(
    lambda inputs: [_vp_reference(v, x) for v, x in zip(VP_VARIANTS, inputs)]
  )(inputs)
  meshes = VP_MESHES if dtype == np.float64 else VP_MESHES[1:2]
  for shape, names, token_axis in meshes:
    mesh = _mesh(DEVICES, names, shape)
    step = jax.jit(
      lambda inputs, mesh=mesh, token_axis=token_axis: [
        _vp_sharded(v, mesh, token_axis, x, VP_CHUNK)
        for v, x in zip(VP_VARIANTS, inputs)
      ]
    )
    got = step(inputs)
    prefix = f"mesh {dict(zip(names, shape))}, tokens over {token_axis}:"
    _vp_compare(report, group, prefix, VP_VARIANTS, got, want, dtype)
    if dtype != np.float64:
      continue
    # Ignored and masked tokens: exactly 0 on every device.
    k = [v.options.get("reduction") for v in VP_VARIANTS].index("none")
    values = np.asarray(got[k][0][1])
    ignored = np.asarray(inputs[k][1]["labels"]) == -100
    report.add(
      group,
      f"{prefix} ignored tokens' values are exactly 0",
      bool(ignored.any() and np.all(values[ignored] == 0)),
      f"{int(ignored.sum())} ignored",
    )
  if dtype != np.float64:
    return
  # Controls (the comparisons can fail): a label scored against the local
  # shard only, and smoothing over the local V, give other numbers.
  diff, other = inputs[1]
  local_v = VP_VOCAB // 4
  smooth = jaxloss.linear_cross_entropy(
    diff["hidden"],
    diff["weight"][:, :local_v],
    jnp.where(other["labels"] < local_v, other["labels"], -100),
    label_smoothing=0.1,
  )
  report.add(
    group,
    "control: the first shard's own loss differs from the global one",
    abs(float(smooth) - float(want[1][0][1])) > 1e-3,
    f"{float(smooth):.6f} vs {float(want[1][0][1]):.6f}",
  )


def check_vocab_parallel_slices(report):
  """The weight read in several [dim, slice] slices (dim 4097: the slice is
  the minimum of 128 columns; 288 local columns = 2 slices + 32), on the
  (2, 4) mesh, token_sum ("mean") and token_values ("none")."""
  group = "vocab_parallel_slices"
  dim, vocab = 4097, 288 * 4
  rng = np.random.default_rng(21)
  variants = (VP_VARIANTS[1], VP_VARIANTS[4])
  raw = _vp_inputs(rng, np.float64, vocab=vocab, dim=dim)
  raw["hidden"] = raw["hidden"] / np.sqrt(dim)
  inputs = [_vp_split(v, raw) for v in variants]
  # The engine's documented rule: the largest power of two of columns whose
  # float32 [dim, slice] fits 4 MiB, at least 128 (here 128 < 288 / 2).
  size = 128
  while 2 * size * dim * 4 <= 4 * 2**20:
    size *= 2
  report.add(
    group,
    "the local vocabulary is read in several slices",
    size < vocab // 4 // 2,
    f"slice {size} of {vocab // 4}",
  )
  want = jax.jit(
    lambda inputs: [_vp_reference(v, x) for v, x in zip(variants, inputs)]
  )(inputs)
  mesh = _mesh(DEVICES, ("data", "model"), (2, 4))
  got = jax.jit(
    lambda inputs: [
      _vp_sharded(v, mesh, "data", x, 5) for v, x in zip(variants, inputs)
    ]
  )(inputs)
  _vp_compare(report, group, "(2, 4):", variants, got, want, np.float64)


def _dense_log_probs(hidden, weight, labels, bias, temperature, cap):
  """``log_softmax(cap·tanh((h W + b)/cap) / T)[label]`` and the entropy,
  materialised (the independent reference)."""
  bias = jnp.asarray(bias)
  z = hidden @ weight + bias.reshape(
    (1,) * (hidden.ndim - bias.ndim) + bias.shape
  )
  if cap is not None:
    z = cap * jnp.tanh(z / cap)
  z = z / temperature
  log_p = jax.nn.log_softmax(z)
  picked = jnp.take_along_axis(log_p, labels[..., None], axis=-1)[..., 0]
  return picked, -jnp.sum(jnp.exp(log_p) * log_p, axis=-1)


def check_vocab_parallel_log_probs(report):
  """linear_log_probs on the three meshes: log p and entropy against the
  materialised formula and the one-device engine, with gradients of
  Σ r₁ log p + r₂ H (hidden, weight, bias, temperature, soft cap)."""
  group = "vocab_parallel_log_probs"
  rng = np.random.default_rng(22)
  raw = _vp_inputs(rng, np.float64)
  labels = jnp.where(raw["labels"] < 0, 3, raw["labels"])
  r1, r2 = (jnp.asarray(rng.normal(size=labels.shape)) for _ in range(2))
  diff = dict(
    hidden=raw["hidden"],
    weight=raw["weight"],
    bias=raw["bias"],
    temperature=jnp.asarray(0.7),
    cap=raw["logit_soft_cap"],
  )

  def scalar(fn):
    def run(diff):
      log_p, entropy = fn(diff)
      return jnp.sum(r1 * log_p + r2 * entropy), (log_p, entropy)

    return jax.value_and_grad(run, has_aux=True)

  dense = scalar(
    lambda d: _dense_log_probs(
      d["hidden"], d["weight"], labels, d["bias"], d["temperature"], d["cap"]
    )
  )

  def one_device_fn(d):
    return jaxloss.linear_log_probs(
      d["hidden"],
      d["weight"],
      labels,
      bias=d["bias"],
      temperature=d["temperature"],
      logit_soft_cap=d["cap"],
      return_entropy=True,
      chunk_size=VP_CHUNK,
    )

  want = jax.jit(dense)(diff)
  compare = lambda label, got, want: (
    report.close(
      group,
      f"{label}: log p, entropy",
      got[0][1],
      want[0][1],
      _within(np.float64),
    ),
    report.close(
      group, f"{label}: gradients", got[1], want[1], _within(np.float64)
    ),
  )
  # The one-device function (issue 20, written alongside this one) when it
  # is there; the materialised formula above is the reference either way.
  if hasattr(jaxloss, "linear_log_probs"):
    one_device = jax.jit(scalar(one_device_fn))(diff)
    compare("one-device jaxloss.linear_log_probs", one_device, want)
  for shape, names, token_axis in VP_MESHES:
    mesh = _mesh(DEVICES, names, shape)
    token_spec = jax.P(token_axis)

    def local(h, w, y, b, t, c, token_axis=token_axis):
      return jd.linear_log_probs(
        h,
        w,
        y,
        vocab_axis="model",
        token_axis=token_axis,
        bias=b,
        temperature=t,
        logit_soft_cap=c,
        return_entropy=True,
        chunk_size=VP_CHUNK,
      )

    sharded = jax.shard_map(
      local,
      mesh=mesh,
      in_specs=(
        token_spec,
        jax.P(None, "model"),
        token_spec,
        jax.P("model"),
        jax.P(),
        jax.P(),
      ),
      out_specs=token_spec,
      check_vma=True,
    )
    got = jax.jit(
      scalar(
        lambda d, sharded=sharded: sharded(
          d["hidden"],
          d["weight"],
          labels,
          d["bias"],
          d["temperature"],
          d["cap"],
        )
      )
    )(diff)
    compare(
      f"mesh {dict(zip(names, shape))}, tokens over {token_axis}", got, want
    )


def check_vocab_parallel_shard(report):
  """shard() with per-argument specs on data x model meshes: Explicit and
  Auto, jit and eager, tied embeddings, reduction="none", log-probs; the
  compiled (2, 4) step has no all-gather; checked() reports out-of-range
  global labels and passes labels of other shards."""
  group = "vocab_parallel_shard"
  rng = np.random.default_rng(23)
  raw = _vp_inputs(rng, np.float64)
  h, w, y = raw["hidden"], raw["weight"], raw["labels"]
  explicit = _mesh(8, ("data", "model"), (2, 4), AxisType.Explicit)
  auto = _mesh(8, ("data", "model"), (4, 2))
  one = lambda h, w, **o: jaxloss.linear_cross_entropy(h, w, y, **o)
  want = jax.value_and_grad(one, argnums=(0, 1))(h, w, label_smoothing=0.1)

  ce = jd.shard(jd.linear_cross_entropy, explicit, vocab_axis="model")
  step = jax.jit(
    jax.value_and_grad(
      lambda h, w: ce(h, w, y, label_smoothing=0.1, chunk_size=VP_CHUNK),
      argnums=(0, 1),
    )
  )
  report.close(
    group,
    "jit, Explicit (2, 4): value and gradients",
    step(h, w),
    want,
    _within(np.float64),
  )
  # No all-gather in the compiled step (forward and backward), with the
  # weight laid out on the vocabulary axis as the caller holds it.
  shardings = [
    jax.NamedSharding(explicit, s)
    for s in (jax.P("data"), jax.P(None, "model"))
  ]
  hlo = (
    step.lower(*(jax.device_put(x, s) for x, s in zip((h, w), shardings)))
    .compile()
    .as_text()
  )
  gathers = [
    line.strip()[:160] for line in hlo.splitlines() if "all-gather" in line
  ]
  report.add(
    group,
    "(2, 4) step: no all-gather in the compiled HLO",
    not gathers and "all-reduce" in hlo,
    "; ".join(gathers[:3]) or f"{hlo.count('all-reduce')} all-reduce lines",
  )
  # Tied embeddings: the [V, dim] table sharded on its rows; weight = E.T.
  table = jax.device_put(w.T, jax.NamedSharding(explicit, jax.P("model", None)))
  tied = jax.jit(
    jax.value_and_grad(
      lambda e, h: ce(h, e.T, y, label_smoothing=0.1), argnums=(0, 1)
    )
  )
  (value, (d_table, d_h)) = tied(table, jax.device_put(h, shardings[0]))
  report.close(
    group,
    "tied embeddings (E sharded P('model', None), weight=E.T)",
    (value, d_h, d_table.T),
    (want[0], want[1][0], want[1][1]),
    _within(np.float64),
  )
  report.add(
    group,
    "tied embeddings: the table's gradient stays sharded on the vocabulary",
    d_table.sharding.spec[0] == "model",
    str(d_table.sharding),
  )
  # Auto mesh, reduction="none": per-token values sharded like labels.
  none = jax.jit(
    functools.partial(
      jd.shard(jd.linear_cross_entropy, auto, vocab_axis="model"),
      reduction="none",
      chunk_size=VP_CHUNK,
    )
  )(h, w, y)
  report.add(
    group,
    "reduction='none': sharded like the labels",
    none.sharding.spec[:1] == jax.P("data")[:1],
    str(none.sharding.spec),
  )
  report.close(
    group,
    "jit, Auto (4, 2): reduction='none'",
    none,
    one(h, w, reduction="none"),
    _within(np.float64),
  )
  # The ONE-device loss inside a user's data-parallel shard_map (the weight
  # gathered, the tokens split over every device), "sum" and "none".
  tokens = ("data", "model")

  def gathered(h, w, y, reduction):
    full = jax.lax.all_gather(w, "model", axis=1, tiled=True)
    values = jaxloss.linear_cross_entropy(
      h, full, y, reduction=reduction, chunk_size=VP_CHUNK
    )
    return jax.lax.psum(jnp.sum(values), tokens)

  for reduction in ("sum", "none"):
    step = jax.jit(
      jax.value_and_grad(
        jax.shard_map(
          functools.partial(gathered, reduction=reduction),
          mesh=auto,
          in_specs=(jax.P(tokens), jax.P(None, "model"), jax.P(tokens)),
          out_specs=jax.P(),
        ),
        argnums=(0, 1),
      )
    )
    report.close(
      group,
      f"one-device loss in a data-parallel shard_map, {reduction!r}",
      step(h, w, y),
      jax.value_and_grad(
        lambda h, w: jnp.sum(one(h, w, reduction=reduction)), argnums=(0, 1)
      )(h, w),
      _within(np.float64),
    )
  # Tokens replicated (axis=None) on a vocabulary-only mesh.
  vocab_only = _mesh(8, ("model",), (8,))
  got = jax.jit(
    jd.shard(jd.linear_cross_entropy, vocab_only, axis=None, vocab_axis="model")
  )(h, w, y, z_loss=1e-3)
  report.close(
    group,
    "jit, (8,) vocabulary-only mesh, axis=None",
    got,
    one(h, w, z_loss=1e-3),
    _within(np.float64),
  )
  sampled = jnp.where(y < 0, 5, y)
  got = jax.jit(
    functools.partial(
      jd.shard(jd.linear_log_probs, auto, vocab_axis="model"),
      return_entropy=True,
    )
  )(h, w, sampled, temperature=0.5)
  want_lp = _dense_log_probs(h, w, sampled, 0.0, 0.5, None)
  report.close(
    group,
    "linear_log_probs through shard: log p and entropy",
    got,
    want_lp,
    _within(np.float64),
  )
  # checked(): a global label of another shard passes; V is caught.
  spec = (jax.P("data"), jax.P(None, "model"), jax.P("data"))
  safe = jax.jit(
    jax.shard_map(
      lambda h, w, y: jaxloss.checked(jd.linear_cross_entropy)(
        h, w, y, vocab_axis="model", token_axis="data"
      ),
      mesh=auto,
      in_specs=spec,
      out_specs=jax.P(),
    )
  )
  ok_labels = y.at[2, 1].set(VP_VOCAB - 1)
  report.close(
    group,
    "checked(): labels of every shard pass",
    safe(h, w, ok_labels),
    jaxloss.linear_cross_entropy(h, w, ok_labels),
    _within(np.float64),
  )
  bad = y.at[2, 1].set(VP_VOCAB)
  nan = jax.jit(
    functools.partial(
      jd.shard(jd.linear_cross_entropy, auto, vocab_axis="model"),
      reduction="none",
    )
  )(h, w, bad)
  report.add(
    group,
    "label V (out of range): NaN for its token only",
    bool(
      np.isnan(nan[2, 1]) and np.isfinite(np.delete(np.ravel(nan), 5)).all()
    ),
    str(nan[2]),
  )
  try:
    jax.block_until_ready(safe(h, w, bad))
    report.add(group, "checked(): label V is reported", False, "no error")
  except Exception as error:  # JaxRuntimeError
    message = str(error)
    report.add(
      group,
      "checked(): label V is reported",
      f"[0, {VP_VOCAB}); found {VP_VOCAB} at index (2, 1)" in message
      and "linear_cross_entropy" in message,
      message[:300],
    )


def check_vocab_parallel_errors(report):
  """Clear ValueErrors naming the loss."""
  group = "vocab_parallel_errors"
  mesh = _mesh(8, ("data", "model"), (2, 4))
  h, w, y = jnp.zeros((8, 4)), jnp.zeros((4, 64)), jnp.zeros(8, int)
  ce = jd.shard(jd.linear_cross_entropy, mesh, vocab_axis="model")
  cases = {
    "vocabulary not divisible by the model axis": (
      lambda: ce(h, w[:, :62], y),
      "multiple of the 4 devices of vocab_axis",
    ),
    "tokens not divisible by the data axis": (
      lambda: ce(h[:7], w, y[:7]),
      "rows of tokens",
    ),
    "shard without vocab_axis": (
      lambda: jd.shard(jd.linear_cross_entropy, mesh),
      "vocab_axis",
    ),
    "axis and vocab_axis the same": (
      lambda: jd.shard(
        jd.linear_log_probs, mesh, axis="model", vocab_axis="model"
      ),
      "different axes",
    ),
    "vocab_axis given to a contrastive loss": (
      lambda: jd.shard(jd.clip_loss, mesh, vocab_axis="model"),
      "contrastive",
    ),
    "vocab_axis passed to the wrapped loss": (
      lambda: ce(h, w, y, vocab_axis="model"),
      "vocab_axis is set by shard",
    ),
    "called outside shard_map": (
      lambda: jd.linear_cross_entropy(h, w, y, vocab_axis="model"),
      "shard_map",
    ),
    "shard_map with check_vma=False": (
      lambda: jax.eval_shape(
        jax.shard_map(
          lambda h, w, y: jd.linear_cross_entropy(h, w, y, vocab_axis="model"),
          mesh=mesh,
          in_specs=(jax.P(), jax.P(None, "model"), jax.P()),
          out_specs=jax.P(),
          check_vma=False,
        ),
        h,
        w,
        y,
      ),
      "check_vma=True",
    ),
    "bias of the wrong shard size": (
      lambda: jax.eval_shape(
        jax.shard_map(
          lambda h, w, y: jd.linear_cross_entropy(
            h, w, y, vocab_axis="model", bias=jnp.zeros(64)
          ),
          mesh=mesh,
          in_specs=(jax.P(), jax.P(None, "model"), jax.P()),
          out_specs=jax.P(),
        ),
        h,
        w,
        y,
      ),
      "bias",
    ),
  }
  for label, (fn, needle) in cases.items():
    try:
      fn()
    except ValueError as error:
      message = str(error)
      ok = needle in message and (
        "linear_cross_entropy" in message
        or "linear_log_probs" in message
        or "clip_loss" in message
      )
      report.add(group, label, ok, message[:300])
    except Exception as error:
      report.add(
        group,
        label,
        False,
        f"{type(error).__name__} instead of ValueError: {error}"[:300],
      )
    else:
      report.add(group, label, False, "no error raised")


# --------------------------------------------------------------------------- #
# Issue 21 (H3): jaxloss.distributed.kto_loss, whose reference point is a mean
# over the global batch (psum of sums and counts).


def _kto_global_inputs(dtype):
  rng = np.random.default_rng(60)
  ref = -rng.uniform(20.0, 60.0, BATCH)
  policy = ref + rng.normal(scale=8.0, size=BATCH)
  ref_kl = -rng.uniform(20.0, 60.0, BATCH)
  policy_kl = ref_kl + rng.normal(loc=1.0, scale=3.0, size=BATCH)
  desirable = rng.random(BATCH) < 0.5
  # Uneven kept counts per device (device 0 keeps fewer): the global mean
  # of the KL differs from trl's mean of the per-device means.
  where = np.ones(BATCH, bool)
  where[1:3] = False
  weights = rng.uniform(0.5, 2.0, BATCH)
  floats = tuple(x.astype(dtype) for x in (policy, ref, policy_kl, ref_kl))
  return floats, desirable, where, weights.astype(dtype)


KTO_HYPER = dict(beta=0.3, desirable_weight=1.2, undesirable_weight=0.8)
KTO_VARIANTS = {  # label: (loss_type, use where, use weights, reduction)
  "kto, mean": ("kto", False, False, "mean"),
  "kto, where and weights, mean": ("kto", True, True, "mean"),
  "kto, where, sum": ("kto", True, False, "sum"),
  "kto, where, none": ("kto", True, False, "none"),
  "kto, batchmean": ("kto", False, True, "batchmean"),
  "apo_zero_unpaired, where, mean": ("apo_zero_unpaired", True, False, "mean"),
}


def _kto_call(fn, variant, floats, desirable, where, weights, **sharded):
  loss_type, use_where, use_weights, reduction = KTO_VARIANTS[variant]
  policy, ref, policy_kl, ref_kl = floats
  if loss_type != "kto":
    policy_kl = ref_kl = None
  return fn(
    policy,
    ref,
    policy_kl,
    ref_kl,
    desirable,
    loss_type=loss_type,
    where=where if use_where else None,
    weights=weights if use_weights else None,
    reduction=reduction,
    **KTO_HYPER,
    **sharded,
  )


def check_kto(report, dtype=np.float64):
  """jd.kto_loss in shard_map equals jaxloss.kto_loss on the global batch
  (value, and gradients of policy_logps and reference_logps taken outside
  shard_map), on 8 and 3 devices, for each variant."""
  group = "kto" if dtype == np.float64 else "kto_f32"
  floats, desirable, where, weights = _kto_global_inputs(dtype)
  spec = jax.P("data")
  for devices in (8, 3):
    mesh = _mesh(devices)
    for variant in KTO_VARIANTS:
      none = KTO_VARIANTS[variant][3] == "none"

      def sharded(p, r, pk, rk, d, w, wt, variant=variant, none=none):
        return jax.shard_map(
          lambda *a: _kto_call(
            jd.kto_loss, variant, a[:4], *a[4:], axis_name="data"
          ),
          mesh=mesh,
          in_specs=(spec,) * 7,
          out_specs=spec if none else jax.P(),
        )(p, r, pk, rk, d, w, wt)

      def one_device(p, r, pk, rk, d, w, wt, variant=variant):
        return _kto_call(jaxloss.kto_loss, variant, (p, r, pk, rk), d, w, wt)

      def value_and_grad(fn):
        return jax.jit(
          jax.value_and_grad(
            lambda p, r, *rest: jnp.sum(fn(p, r, *rest)), argnums=(0, 1)
          )
        )

      args = (*floats, desirable, where, weights)
      got = value_and_grad(sharded)(*args)
      want = value_and_grad(one_device)(*args)
      report.close(
        group,
        f"{devices} devices: {variant}",
        got,
        jax.tree.map(np.asarray, want),
        _within(dtype),
      )
  if dtype != np.float64:
    return
  # The uneven shards make the test tell the global mean from trl's mean of
  # per-device means (which jd.kto_loss does not compute).
  kl = np.where(where, floats[2] - floats[3], 0).reshape(8, -1)
  kept = where.reshape(8, -1).sum(1)
  global_mean = kl.sum() / kept.sum()
  mean_of_means = np.mean(kl.sum(1) / kept)
  report.add(
    group,
    "uneven shards: trl's mean of per-device means differs",
    abs(global_mean - mean_of_means) > 1e-3,
    f"{global_mean} vs {mean_of_means}",
  )
  # shard(): the same loss with every array split on axis 0.
  mesh = _mesh(8)
  args = (*floats, desirable)
  report.close(
    group,
    "shard(kto_loss), 8 devices: mean",
    jax.jit(jd.shard(jd.kto_loss, mesh))(*args, where=where),
    np.asarray(jaxloss.kto_loss(*args, where=where, reduction="mean")),
    _within(dtype),
  )
  try:
    jd.kto_loss(*floats, desirable, axis_name="data")
  except ValueError as error:
    ok = "kto_loss" in str(error) and "axis_name" in str(error)
    report.add(group, "outside shard_map: ValueError", ok, str(error)[:300])
  else:
    report.add(group, "outside shard_map: ValueError", False, "no error")


# --------------------------------------------------------------------------- #
# GRPO: jaxloss.distributed.grpo_loss, completions sharded over "data"

# (label, options, completion-shaped where); every setting has the k3 KL
# penalty and weights. The token counts differ from device to device.
GRPO_SETTINGS = [
  ("default", {}, False),
  (
    "grpo,gspo,bias_kl",
    dict(
      loss_type="grpo",
      importance_sampling_level="sequence",
      use_bias_correction_kl=True,
    ),
    False,
  ),
  ("bnpo", dict(loss_type="bnpo"), False),
  ("dr_grpo", dict(loss_type="dr_grpo", max_completion_length=8), False),
  ("dapo,delta", dict(loss_type="dapo", epsilon_high=0.28, delta=1.5), False),
  ("dapo,where", dict(loss_type="dapo"), True),
  ("cispo", dict(loss_type="cispo", epsilon_high=1.2), False),
  ("sapo", dict(loss_type="sapo"), False),
  (
    "luspo,gspo",
    dict(loss_type="luspo", importance_sampling_level="sequence"),
    False,
  ),
  ("vespo", dict(loss_type="vespo"), False),
]


def _grpo_inputs(seed=30, t=5):
  """``(diffs, others)`` per setting: ``(log_probs, ref_log_probs)``
  differentiated; ``(old_log_probs, advantages, completion_mask, weights,
  where)``; empty completions and garbage in the padding."""
  rng = np.random.default_rng(seed)
  diffs, others = [], []
  for _ in GRPO_SETTINGS:
    logp = -rng.uniform(0.05, 3.0, size=(BATCH, t))
    old = logp + rng.normal(scale=0.4, size=(BATCH, t))
    ref = logp + rng.normal(scale=0.5, size=(BATCH, t))
    lengths = rng.integers(0, t + 1, size=BATCH)
    lengths[[0, 7]] = 0
    mask = np.arange(t)[None, :] < lengths[:, None]
    garbage = np.where(mask, 0.0, 7.0)
    diffs.append((logp + garbage, ref + garbage))
    others.append(
      (
        old + garbage,
        rng.normal(size=BATCH),
        mask,
        rng.uniform(0.5, 2.0, size=BATCH),
        rng.random(BATCH) > 0.25,
      )
    )
  return diffs, others


def _grpo_losses(fn, diffs, others, reduction="mean", **extra):
  return [
    fn(
      logp,
      old,
      adv,
      mask,
      ref,
      beta=0.05,
      weights=w,
      where=keep if use_where else None,
      reduction=reduction,
      **options,
      **extra,
    )
    for (_, options, use_where), (logp, ref), (old, adv, mask, w, keep) in zip(
      GRPO_SETTINGS, diffs, others
    )
  ]


def _grpo_value_and_grad(losses):
  def total(diffs, others):
    values = losses(diffs, others)
    return sum(values), values

  return jax.jit(jax.value_and_grad(total, has_aux=True))


def check_grpo(report):
  """Every loss type's "mean" (value and gradients of log_probs and
  ref_log_probs) on 8 and 3 devices equals jaxloss.grpo_loss on the global
  batch; "sum" and "none" (this device's values) on 8."""
  group = "grpo"
  diffs, others = _grpo_inputs()
  (_, want), want_d = _grpo_value_and_grad(
    functools.partial(_grpo_losses, jaxloss.grpo_loss)
  )(diffs, others)
  spec = jax.P("data")
  for n in (8, 3):
    losses = jax.shard_map(
      functools.partial(_grpo_losses, jd.grpo_loss, axis_name="data"),
      mesh=_mesh(n),
      in_specs=(spec, spec),
      out_specs=jax.P(),
    )
    (_, got), got_d = _grpo_value_and_grad(losses)(diffs, others)
    for k, (label, _, _) in enumerate(GRPO_SETTINGS):
      report.close(
        group,
        f"{n} devices: {label}, mean and gradients",
        (got[k], got_d[k]),
        (want[k], want_d[k]),
        _within(np.float64),
      )
  for reduction, out_spec in (("sum", jax.P()), ("none", spec)):
    got = jax.jit(
      jax.shard_map(
        functools.partial(
          _grpo_losses, jd.grpo_loss, axis_name="data", reduction=reduction
        ),
        mesh=_mesh(8),
        in_specs=(spec, spec),
        out_specs=out_spec,
      )
    )(diffs, others)
    want = _grpo_losses(jaxloss.grpo_loss, diffs, others, reduction=reduction)
    report.close(
      group,
      f"8 devices: reduction={reduction!r}",
      got,
      want,
      _within(np.float64),
    )
  # shard(): every array split on axis 0 (the completions).
  (logp, ref), (old, adv, mask, w, keep) = diffs[0], others[0]
  options = GRPO_SETTINGS[0][1]
  report.close(
    group,
    "shard(grpo_loss), 8 devices: mean",
    jax.jit(jd.shard(jd.grpo_loss, _mesh(8)))(
      logp, old, adv, mask, ref, beta=0.05, weights=w, where=keep, **options
    ),
    np.asarray(
      jaxloss.grpo_loss(
        logp,
        old,
        adv,
        mask,
        ref,
        beta=0.05,
        weights=w,
        where=keep,
        reduction="mean",
        **options,
      )
    ),
    _within(np.float64),
  )
  try:
    jd.grpo_loss(*diffs[0][:1], None, others[0][1], axis_name="data")
  except ValueError as error:
    ok = "grpo_loss" in str(error) and "data" in str(error)
    report.add(group, "outside shard_map: a clear error", ok, str(error)[:300])
  else:
    report.add(group, "outside shard_map: a clear error", False, "no error")


# --------------------------------------------------------------------------- #
# Issue 22 (S2): jaxloss.distributed.dino_loss and swav_loss (DINO's centre
# and Sinkhorn's sums over the global batch), and shard() with per-argument
# batch axes (DINO's logits split on axis 1, its centre replicated).

CL_BATCH, CL_K = 24, 6
# (where, weights, reduction); device 0 of 8 keeps 1 of its 3 examples.
CL_VARIANTS = {
  "mean": (False, False, "mean"),
  "where and weights, mean": (True, True, "mean"),
  "where, sum": (True, False, "sum"),
  "where, none": (True, False, "none"),
  "weights, batchmean": (False, True, "batchmean"),
}
CL_DINO = dict(teacher_temperature=0.07, center_momentum=0.8)
CL_SWAV = dict(epsilon=0.05, sinkhorn_iterations=3)
# (label, mesh shape, mesh axis names, the loss's axis_name)
CL_MESHES = (
  ("(8,)", (8,), ("data",), "data"),
  ("(2, 4) data x model, over data", (2, 4), ("data", "model"), "data"),
  ("(2, 4), over (data, model)", (2, 4), ("data", "model"), ("data", "model")),
)


def _cl_inputs():
  rng = np.random.default_rng(70)
  unit = lambda x: x / np.linalg.norm(x, axis=-1, keepdims=True)
  z_a, z_b = (unit(rng.normal(size=(CL_BATCH, 5))) for _ in range(2))
  prototypes = unit(rng.normal(size=(CL_K, 5)))
  where = np.ones(CL_BATCH, bool)
  where[[1, 2, 10, 17]] = False
  return dict(
    student=rng.normal(size=(4, CL_BATCH, CL_K)) * 2,
    teacher=rng.normal(size=(2, CL_BATCH, CL_K)) * 2,
    center=rng.normal(size=CL_K) * 0.3,
    a=z_a @ prototypes.T,
    b=z_b @ prototypes.T,
    where=where,
    weights=rng.uniform(0.5, 2.0, CL_BATCH),
    st=np.float64(0.2),
    tau=np.float64(0.1),
  )


def _cl_step(dino, swav):
  """jit of every variant's (value, new centre, gradients) of DINO (student
  logits, student temperature) and SwAV (both scores, temperature);
  ``dino(variant)`` and ``swav(variant)`` give the loss to call."""

  def step(x):
    out = {}
    for label, (use_where, use_weights, reduction) in CL_VARIANTS.items():
      masks = dict(
        where=x["where"] if use_where else None,
        weights=x["weights"] if use_weights else None,
        reduction=reduction,
      )

      def dino_total(s, st, label=label, masks=masks):
        loss, centre = dino(label)(
          s, x["teacher"], x["center"], student_temperature=st, **masks
        )
        return jnp.sum(loss), (loss, centre)

      def swav_total(a, b, tau, label=label, masks=masks):
        loss = swav(label)(a, b, temperature=tau, **masks)
        return jnp.sum(loss), loss

      (_, aux), grads = jax.value_and_grad(
        dino_total, argnums=(0, 1), has_aux=True
      )(x["student"], x["st"])
      out[f"dino, {label}"] = (aux, grads)
      (_, loss), grads = jax.value_and_grad(
        swav_total, argnums=(0, 1, 2), has_aux=True
      )(x["a"], x["b"], x["tau"])
      out[f"swav, {label}"] = (loss, grads)
    return out

  return jax.jit(step)


def _cl_one_device():
  return _cl_step(
    lambda _: functools.partial(jaxloss.dino_loss, **CL_DINO),
    lambda _: functools.partial(jaxloss.swav_loss, **CL_SWAV),
  )


def _cl_sharded(mesh, axis):
  """shard_map of jd.dino_loss / jd.swav_loss over ``axis``, gradients
  taken outside."""
  batch, views = jax.P(axis), jax.P(None, axis)

  def dino(label):
    none = CL_VARIANTS[label][2] == "none"

    def call(s, t, c, *, student_temperature, where, weights, reduction):
      return jax.shard_map(
        lambda s, t, c, st, w, wt: jd.dino_loss(
          s,
          t,
          c,
          axis_name=axis,
          student_temperature=st,
          where=w,
          weights=wt,
          reduction=reduction,
          **CL_DINO,
        ),
        mesh=mesh,
        in_specs=(views, views, jax.P(), jax.P(), batch, batch),
        out_specs=(batch if none else jax.P(), jax.P()),
      )(s, t, c, student_temperature, where, weights)

    return call

  def swav(label):
    none = CL_VARIANTS[label][2] == "none"

    def call(a, b, *, temperature, where, weights, reduction):
      return jax.shard_map(
        lambda a, b, tau, w, wt: jd.swav_loss(
          a,
          b,
          axis_name=axis,
          temperature=tau,
          where=w,
          weights=wt,
          reduction=reduction,
          **CL_SWAV,
        ),
        mesh=mesh,
        in_specs=(batch, batch, jax.P(), batch, batch),
        out_specs=batch if none else jax.P(),
      )(a, b, temperature, where, weights)

    return call

  return _cl_step(dino, swav)


def check_cluster(report):
  """jd.dino_loss / jd.swav_loss in shard_map equal the one-device losses on
  the global batch: values, new centre, gradients of the logits/scores and
  of the temperatures (float64, 1e-10), every variant, on 3 meshes; the
  per-device statistics would differ; a clear error outside shard_map."""
  group = "cluster"
  x = _cl_inputs()
  want = jax.tree.map(np.asarray, _cl_one_device()(x))
  for label, shape, names, axis in CL_MESHES:
    got = _cl_sharded(
      _mesh(8 if len(shape) > 1 else shape[0], names, shape), axis
    )(x)
    for variant in want:
      report.close(
        group,
        f"{label}: {variant}",
        got[variant],
        want[variant],
        _within(np.float64),
      )
  # The checks can tell the global statistics from per-device ones: SwAV's
  # codes and DINO's centre from each device's 3 examples differ.
  slices = [slice(3 * d, 3 * d + 3) for d in range(8)]
  per_device = np.mean(
    [
      jaxloss.swav_loss(x["a"][s], x["b"][s], reduction="mean", **CL_SWAV)
      for s in slices
    ]
  )
  global_swav = want["swav, mean"][0]
  report.add(
    group,
    "per-device Sinkhorn codes give another loss",
    abs(per_device - global_swav) > 1e-3,
    f"{per_device} vs {global_swav}",
  )
  where = x["where"]
  centres = [
    jaxloss.dino_loss(
      x["student"][:, s], x["teacher"][:, s], x["center"], where=where[s]
    )[1]
    for s in slices
  ]
  global_centre = want["dino, where, sum"][0][1]
  gap = np.abs(np.mean(centres, axis=0) - global_centre).max()
  report.add(
    group,
    "uneven kept counts: the mean of per-device centres differs",
    gap > 1e-3,
    f"max difference {gap:.3g}",
  )
  for fn, args in (
    (jd.dino_loss, (x["student"], x["teacher"], x["center"])),
    (jd.swav_loss, (x["a"], x["b"])),
  ):
    try:
      fn(*args, axis_name="data")
    except ValueError as error:
      ok = fn.__name__ in str(error) and "axis_name" in str(error)
      report.add(
        group, f"{fn.__name__} outside shard_map", ok, str(error)[:300]
      )
    else:
      report.add(group, f"{fn.__name__} outside shard_map", False, "no error")


def check_cluster_shard(report):
  """shard() with per-argument batch axes: DINO (logits split on axis 1,
  centre replicated) and SwAV through shard equal the one-device losses on
  the global batch (Explicit and Auto meshes, jit and eager); batch_axes
  given by hand; its errors."""
  group = "cluster_shard"
  x = _cl_inputs()
  explicit = _mesh(8, types=AxisType.Explicit)
  two_axis = _mesh(8, ("data", "model"), (2, 4))
  masks = dict(where=x["where"], weights=x["weights"])

  def one(s, st):
    loss, centre = jaxloss.dino_loss(
      s,
      x["teacher"],
      x["center"],
      student_temperature=st,
      reduction="mean",
      **masks,
      **CL_DINO,
    )
    return loss, centre

  want = jax.value_and_grad(one, argnums=(0, 1), has_aux=True)(
    x["student"], x["st"]
  )
  dino = jd.shard(jd.dino_loss, explicit)
  got = jax.jit(
    jax.value_and_grad(
      lambda s, st: dino(
        s,
        x["teacher"],
        x["center"],
        student_temperature=st,
        **masks,
        **CL_DINO,
      ),
      argnums=(0, 1),
      has_aux=True,
    )
  )(x["student"], x["st"])
  report.close(
    group,
    "jit, Explicit (8,): dino_loss value, centre, gradients",
    got,
    want,
    _within(np.float64),
  )
  by_hand = jd.shard(
    jd.dino_loss,
    two_axis,
    batch_axes={"student_logits": 1, "teacher_logits": 1, "center": None},
  )
  got = by_hand(
    x["student"], x["teacher"], x["center"], reduction="none", **CL_DINO
  )
  report.close(
    group,
    "eager, Auto (2, 4), batch_axes by hand: dino_loss 'none' and centre",
    got,
    jaxloss.dino_loss(x["student"], x["teacher"], x["center"], **CL_DINO),
    _within(np.float64),
  )
  swav = jd.shard(jd.swav_loss, explicit)
  got = jax.jit(
    jax.value_and_grad(
      lambda a, b: swav(a, b, **masks, **CL_SWAV), argnums=(0, 1)
    )
  )(x["a"], x["b"])
  want = jax.value_and_grad(
    lambda a, b: jaxloss.swav_loss(a, b, reduction="mean", **masks, **CL_SWAV),
    argnums=(0, 1),
  )(x["a"], x["b"])
  report.close(
    group, "jit, Explicit (8,): swav_loss", got, want, _within(np.float64)
  )
  # Errors name the loss and the argument.
  bad = (
    (
      "batch_axes names an unknown argument",
      lambda: jd.shard(jd.dino_loss, explicit, batch_axes={"logits": 1}),
      ("dino_loss", "'logits'"),
    ),
    (
      "batch_axes value not an axis",
      lambda: jd.shard(jd.swav_loss, explicit, batch_axes={"scores_a": -1}),
      ("swav_loss", "'scores_a'"),
    ),
    (
      "batch_axes with a vocabulary-parallel loss",
      lambda: jd.shard(
        jd.linear_cross_entropy,
        two_axis,
        vocab_axis="model",
        batch_axes={"hidden": 0},
      ),
      ("linear_cross_entropy", "batch_axes"),
    ),
    (
      "batch not divisible on axis 1",
      lambda: dino(x["student"][:, :20], x["teacher"][:, :20], x["center"]),
      ("dino_loss", "student_logits", "axis 1"),
    ),
    (
      "batch axis beyond the array's rank",
      lambda: jd.shard(jd.swav_loss, explicit, batch_axes={"where": 1})(
        x["a"], x["b"], where=x["where"]
      ),
      ("swav_loss", "where"),
    ),
  )
  for label, call, words in bad:
    try:
      call()
    except ValueError as error:
      ok = all(w in str(error) for w in words)
      report.add(group, f"{label}: ValueError", ok, str(error)[:300])
    else:
      report.add(group, f"{label}: ValueError", False, "no error")


# Issue 22 (S1): Barlow Twins and VICReg with psum'd batch statistics

# (label, sharded loss, one-device loss, options); each variant gets its own
# inputs, all of them in one compiled program per mesh.
SSL_VARIANTS = [
  ("barlow_twins", jd.barlow_twins_loss, jaxloss.barlow_twins_loss, {}),
  (
    "barlow_twins, where, lambda 0.1",
    jd.barlow_twins_loss,
    jaxloss.barlow_twins_loss,
    dict(lambda_=0.1, eps=1e-3),
  ),
  ("vicreg", jd.vicreg_loss, jaxloss.vicreg_loss, {}),
  (
    "vicreg, where, weights 1 2 0.5, gamma 1.5",
    jd.vicreg_loss,
    jaxloss.vicreg_loss,
    dict(
      invariance_weight=1.0,
      variance_weight=2.0,
      covariance_weight=0.5,
      gamma=1.5,
    ),
  ),
]
SSL_BATCH, SSL_DIM = (
  32,
  5,
)  # 4 per device on (8,), 16 on the data axis of (2, 4)


def _ssl_inputs(seed=40):
  """``[(z_a, z_b, where or None)]``: per-dimension scales around 1, an
  offset, and (for the ", where" variants) masks keeping 0 to 4 examples of
  each device's 4 on the (8,) mesh: unequal counts, one device keeps none."""
  rng = np.random.default_rng(seed)
  kept = np.array([0, 1, 2, 3, 4, 4, 3, 2])
  uneven = (np.arange(4)[None, :] < kept[:, None]).reshape(-1)
  inputs = []
  for label, *_ in SSL_VARIANTS:
    scale = np.linspace(0.4, 1.6, SSL_DIM)
    z_a = rng.normal(size=(SSL_BATCH, SSL_DIM)) * scale + 0.3
    z_b = z_a + 0.5 * rng.normal(size=(SSL_BATCH, SSL_DIM))
    inputs.append((z_a, z_b, uneven if "where" in label else None))
  return inputs


def _ssl_losses(call, inputs):
  return [
    call(fn, one, z_a, z_b, where, options)
    for (_, fn, one, options), (z_a, z_b, where) in zip(
      SSL_VARIANTS, inputs, strict=True
    )
  ]


def _ssl_value_and_grad(total_fn):
  """``(z pairs) -> (values, grads)`` of every variant, one program."""

  def total(pairs, masks):
    values = total_fn(pairs, masks)
    return sum(values), values

  return jax.jit(jax.value_and_grad(total, has_aux=True))


def check_ssl_statistics(report):
  """jd.barlow_twins_loss and jd.vicreg_loss in shard_map equal the
  one-device losses on the global batch, value and gradients (float64,
  1e-10), on meshes (8,) and (2, 4) (data axis "data"), with unequal kept
  counts per device; per-device statistics would differ; shard() takes them;
  errors outside shard_map and for a global batch of one."""
  group = "ssl_statistics"
  inputs = _ssl_inputs()
  pairs = [(z_a, z_b) for z_a, z_b, _ in inputs]
  masks = [where for _, _, where in inputs]

  def one_device(pairs, masks):
    return [
      one(z_a, z_b, **({} if where is None else {"where": where}), **options)
      for (_, _, one, options), (z_a, z_b), where in zip(
        SSL_VARIANTS, pairs, masks, strict=True
      )
    ]

  (_, want_values), want_grads = _ssl_value_and_grad(one_device)(pairs, masks)
  want = jax.tree.map(np.asarray, (want_values, want_grads))
  for shape, names in (((8,), ("data",)), ((2, 4), ("data", "model"))):
    mesh = _mesh(8, names, shape)
    spec = jax.P("data")

    def sharded(pairs, masks, mesh=mesh, spec=spec):
      def body(pairs, masks):
        return [
          fn(
            z_a,
            z_b,
            axis_name="data",
            **({} if where is None else {"where": where}),
            **options,
          )
          for (_, fn, _, options), (z_a, z_b), where in zip(
            SSL_VARIANTS, pairs, masks, strict=True
          )
        ]

      specs = jax.tree.map(lambda _: spec, (pairs, masks))
      return jax.shard_map(body, mesh=mesh, in_specs=specs, out_specs=jax.P())(
        pairs, masks
      )

    (_, values), grads = _ssl_value_and_grad(sharded)(pairs, masks)
    for k, (label, *_) in enumerate(SSL_VARIANTS):
      report.close(
        group,
        f"mesh {shape}: {label}",
        (values[k], grads[k]),
        (want[0][k], want[1][k]),
        _within(np.float64),
      )
  # Per-device statistics (each device's own loss, averaged) train another
  # model: the difference on these inputs.
  z_a, z_b, _ = inputs[0]
  per_device = float(
    jnp.mean(
      jax.jit(jax.vmap(jaxloss.barlow_twins_loss))(
        z_a.reshape(8, -1, SSL_DIM), z_b.reshape(8, -1, SSL_DIM)
      )
    )
  )
  report.add(
    group,
    "per-device statistics differ from the global batch's",
    abs(per_device - float(want[0][0])) > 1e-2 * abs(float(want[0][0])),
    f"global {float(want[0][0]):.6f}, mean of per-device {per_device:.6f}",
  )
  mesh = _mesh(8)
  for fn, one in (
    (jd.barlow_twins_loss, jaxloss.barlow_twins_loss),
    (jd.vicreg_loss, jaxloss.vicreg_loss),
  ):
    got = jax.jit(jd.shard(fn, mesh))(jnp.asarray(z_a), jnp.asarray(z_b))
    report.close(
      group,
      f"shard({fn.__name__})",
      got,
      np.asarray(one(z_a, z_b)),
      _within(np.float64),
    )
    try:
      fn(z_a, z_b, axis_name="data")
    except ValueError as error:
      ok = fn.__name__ in str(error) and "axis_name" in str(error)
      report.add(group, f"{fn.__name__} outside shard_map", ok, str(error))
    else:
      report.add(group, f"{fn.__name__} outside shard_map", False, "no error")
  try:  # one example on one device: N - 1 = 0
    jax.jit(jd.shard(jd.vicreg_loss, _mesh(1)))(z_a[:1], z_b[:1])
  except ValueError as error:
    ok = "vicreg_loss" in str(error) and "`z_a`" in str(error)
    report.add(group, "vicreg: global batch of one", ok, str(error))
  else:
    report.add(group, "vicreg: global batch of one", False, "no error")


# Issue 23 (H-C): jaxloss.distributed.load_balancing_loss and router_z_loss,
# the tokens of every group sharded over "data" (psum of each group's
# dispatch counts, probability sums and kept tokens; of the z-loss's sum and
# count). One mesh, (8,); inputs [groups 2, tokens 16 (2 per device), E 4].

RT_GROUPS, RT_TOKENS, RT_EXPERTS, RT_K = 2, 16, 4, 2


def _rt_inputs(seed=50):
  """float64 logits and probabilities ``[2, 16, 4]``, top-2 indices, and a
  mask under which device 0 keeps none of its tokens (in both groups),
  device 3 one, and group 1 keeps fewer tokens than group 0."""
  rng = np.random.default_rng(seed)
  logits = 2 * rng.normal(size=(RT_GROUPS, RT_TOKENS, RT_EXPERTS))
  probs = np.asarray(jax.nn.softmax(logits, axis=-1))
  top = np.argsort(-probs, axis=-1)[..., :RT_K].astype(np.int32)
  keep = np.ones((RT_GROUPS, RT_TOKENS), bool)
  keep[:, 0:2] = False  # device 0: all padding
  keep[:, 6] = False  # device 3: one token left
  keep[1, 9:12] = False
  return logits, probs, top, keep


def _rt_losses(lb, z, probs2, logits2, top, keep, **sharded):
  """Four values, each of its own copy of the floats (``probs2``,
  ``logits2``: ``[2, groups, tokens, E]``): load balancing (top-2, no mask;
  top-1 ``[groups, tokens]`` indices with the mask), z-loss (no mask; the
  mask)."""
  e = RT_EXPERTS
  return [
    lb(probs2[0], top, num_experts=e, **sharded),
    lb(probs2[1], top[..., 0], num_experts=e, where=keep, **sharded),
    z(logits2[0], **sharded),
    z(logits2[1], where=keep, **sharded),
  ]


def check_routing(report):
  """jd.load_balancing_loss and jd.router_z_loss in shard_map (tokens
  sharded on axis 1) equal the one-device losses on the global batch, value
  and gradients (float64, 1e-10), with a device whose tokens are all
  padding; shard() on [tokens, E] inputs; the error outside shard_map."""
  group = "routing"
  logits, probs, top, keep = _rt_inputs()
  # Each variant gets its own copy of the floats (disjoint inputs: the
  # gradient of the sum is each loss's gradient).
  probs2, logits2 = np.stack([probs, probs]), np.stack([logits, logits])

  def value_and_grad(losses):
    def total(probs2, logits2):
      values = losses(probs2, logits2)
      return sum(values), values

    return jax.jit(jax.value_and_grad(total, argnums=(0, 1), has_aux=True))

  def one_device(probs2, logits2):
    return _rt_losses(
      jaxloss.load_balancing_loss,
      jaxloss.router_z_loss,
      probs2,
      logits2,
      top,
      keep,
    )

  mesh = _mesh(8)
  tokens = jax.P(None, None, "data")  # [variant, group, token, ...]

  def sharded(probs2, logits2):
    def body(probs2, logits2, top, keep):
      return _rt_losses(
        jd.load_balancing_loss,
        jd.router_z_loss,
        probs2,
        logits2,
        top,
        keep,
        axis_name="data",
      )

    return jax.shard_map(
      body,
      mesh=mesh,
      in_specs=(tokens, tokens, jax.P(None, "data"), jax.P(None, "data")),
      out_specs=jax.P(),
    )(probs2, logits2, top, keep)

  (_, want_values), want_grads = value_and_grad(one_device)(probs2, logits2)
  (_, values), grads = value_and_grad(sharded)(probs2, logits2)
  labels = ["load balancing, top-2", "load balancing, top-1, where"]
  labels += ["z-loss", "z-loss, where"]
  for k, label in enumerate(labels):
    arg = 0 if k < 2 else 1  # probabilities or logits; then the copy
    report.close(
      group,
      f"mesh (8,): {label}",
      (values[k], grads[arg][k % 2]),
      (np.asarray(want_values[k]), np.asarray(want_grads[arg][k % 2])),
      _within(np.float64),
    )
  # shard() splits [tokens, E] inputs on axis 0.
  flat_probs = probs.reshape(-1, RT_EXPERTS)
  flat_top = top.reshape(-1, RT_K)
  flat_keep = keep.reshape(-1)
  lb = jd.shard(jd.load_balancing_loss, mesh)
  got = jax.jit(lambda p, i, w: lb(p, i, num_experts=RT_EXPERTS, where=w))(
    flat_probs, flat_top, flat_keep
  )
  want = jaxloss.load_balancing_loss(
    flat_probs, flat_top, num_experts=RT_EXPERTS, where=flat_keep
  )
  report.close(
    group,
    "shard(load_balancing_loss)",
    got,
    np.asarray(want),
    _within(np.float64),
  )
  flat_logits = logits.reshape(-1, RT_EXPERTS)
  got = jax.jit(jd.shard(jd.router_z_loss, mesh))(flat_logits)
  want = jaxloss.router_z_loss(flat_logits)
  report.close(
    group, "shard(router_z_loss)", got, np.asarray(want), _within(np.float64)
  )
  try:
    jd.router_z_loss(flat_logits, axis_name="data")
  except ValueError as error:
    ok = "router_z_loss" in str(error) and "axis_name" in str(error)
    report.add(group, "router_z_loss outside shard_map", ok, str(error))
  else:
    report.add(group, "router_z_loss outside shard_map", False, "no error")


GROUPS = {
  "float64": lambda r: check_equality(r, np.float64, FLOAT64_PLAN),
  "float32": lambda r: check_equality(r, np.float32, FLOAT32_PLAN),
  "two_axis_mesh": check_two_axis_mesh,
  "pmap": check_pmap,
  "grad_inside": check_grad_inside,
  "reductions": check_reductions,
  "shard_wrapper": check_shard_wrapper,
  "errors": check_errors,
  "default_memory": check_default_memory,
  "vocab_parallel": check_vocab_parallel,
  "vocab_parallel_f32": lambda r: check_vocab_parallel(r, np.float32),
  "vocab_parallel_slices": check_vocab_parallel_slices,
  "vocab_parallel_log_probs": check_vocab_parallel_log_probs,
  "vocab_parallel_shard": check_vocab_parallel_shard,
  "vocab_parallel_errors": check_vocab_parallel_errors,
  "kto": check_kto,
  "kto_f32": lambda r: check_kto(r, np.float32),
  "grpo": check_grpo,
  "cluster": check_cluster,
  "cluster_shard": check_cluster_shard,
  "ssl_statistics": check_ssl_statistics,
  "routing": check_routing,
}


def main(argv):
  jax.config.update("jax_enable_x64", True)
  jax.config.update("jax_numpy_rank_promotion", "raise")
  report = Report()
  if jax.device_count() < DEVICES:
    report.add(
      "setup",
      "8 devices",
      False,
      f"{jax.device_count()} devices: set XLA_FLAGS="
      f"--xla_force_host_platform_device_count={DEVICES} before jax "
      "is imported",
    )
    return 1
  for name in argv or GROUPS:
    start = time.perf_counter()
    try:
      GROUPS[name](report)
    except Exception:
      report.add(name, "group crashed", False, traceback.format_exc()[-2000:])
    report.add(name, "time", True, f"{time.perf_counter() - start:.1f} s")
  return 1 if report.failed else 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
