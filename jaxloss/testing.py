"""Conformance checks that every jaxloss loss passes; public so users can run
them on their own losses.

Describe a loss with a :class:`LossCase` (the function and a factory of
inputs), then run :func:`check_loss` or any single property from
:data:`PROPERTIES`::

  case = LossCase(my_loss, make_inputs=lambda rng, n: (
      (rng.normal(size=(n, 3)).astype("float32"),
       rng.integers(0, 3, size=n).astype("int32")), {}))
  jaxloss.testing.check_loss(case)

A loss that follows the jaxloss contract takes ``where``, ``weights`` and
``reduction`` keywords, returns per-example values whose axis 0 is the batch
axis of its positional inputs, and raises ``ValueError``/``TypeError`` at trace
time on bad shapes and dtypes.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import test_util

Inputs = tuple[tuple, dict]


def _drop_last_example(inputs: Inputs, arg: int = 1) -> Inputs | None:
  args, kwargs = inputs
  if len(args) <= arg or np.ndim(args[arg]) == 0:
    return None
  shorter = list(args)
  shorter[arg] = np.asarray(args[arg])[:-1]
  return tuple(shorter), kwargs


@dataclasses.dataclass(frozen=True)
class LossCase:
  """A loss and what the conformance checks need to know to call it.

  Attributes:
    fn: the loss function.
    make_inputs: ``(rng, batch) -> (args, kwargs)``: valid random inputs with
      ``batch`` examples; ``args`` are the positional arrays.
    name: test id (defaults to ``fn.__name__``); several cases may share a
      function with different options.
    float_args: indices of the positional arrays that are floating inputs
      (differentiated, and cast to bfloat16 in the half-precision check).
    batch_args: indices of the positional arrays whose axis 0 is the batch
      axis (default: all of them).
    edge_inputs: ``() -> [inputs, ...]``: edge cases whose value and gradient
      must be finite.
    reductions: the reductions the loss supports.
    per_example: whether the loss returns per-example values along the batch
      axis (the ``where``, ``weights`` and ``vmap`` checks need this).
    grad_modes: modes for :func:`jax.test_util.check_grads`; ``("rev",)`` for
      a loss with a ``custom_vjp``.
    wrong_shape: ``inputs -> inputs`` with a shape the loss must reject, or
      ``None`` to skip; the default drops the last example of argument 1.
    mean_of_none: whether ``"mean"`` is the average of the ``"none"`` values;
      ``False`` where the loss weights its own mean (class weights).
    batch: the batch size used by the checks.
    label_arg: index of the positional integer class-label argument whose
      valid values are ``[0, num_classes)`` (the out-of-range label check),
      or ``None``.
    num_classes: the number of classes of ``make_inputs``' labels.
    magnitude_args: indices of the positional floating arguments that the
      huge-magnitude check scales (default: ``float_args``); ``()`` for a
      loss whose inputs are bounded (probabilities).
    max_magnitude: the largest input magnitude the loss supports, as its
      docstring states (the huge-magnitude check stays within it), or
      ``None`` for no limit.
  """

  fn: Callable
  make_inputs: Callable[[np.random.Generator, int], Inputs]
  name: str | None = None
  float_args: tuple[int, ...] = (0,)
  batch_args: tuple[int, ...] | None = None
  edge_inputs: Callable[[], Sequence[Inputs]] | None = None
  reductions: tuple[str, ...] = ("none", "sum", "mean")
  per_example: bool = True
  grad_modes: tuple[str, ...] = ("fwd", "rev")
  wrong_shape: Callable[[Inputs], Inputs | None] | None = _drop_last_example
  mean_of_none: bool = True
  batch: int = 6
  label_arg: int | None = None
  num_classes: int | None = None
  magnitude_args: tuple[int, ...] | None = None
  max_magnitude: float | None = None

  @property
  def id(self) -> str:
    return self.name or self.fn.__name__

  def inputs(self, seed: int = 0, batch: int | None = None) -> Inputs:
    size = self.batch if batch is None else batch
    return self.make_inputs(np.random.default_rng(seed), size)

  def call(self, args, kwargs, **extra):
    return self.fn(*args, **{**kwargs, **extra})


# --------------------------------------------------------------------------- #
# helpers


def assert_close(
  actual: Any,
  expected: Any,
  rtol: float = 1e-5,
  atol: float = 1e-6,
  what: str = "",
) -> None:
  """``actual`` equals ``expected`` elementwise within ``rtol``/``atol``,
  compared in float64 (the suite's one closeness assertion)."""
  np.testing.assert_allclose(
    np.asarray(actual, np.float64),
    np.asarray(expected, np.float64),
    rtol=rtol,
    atol=atol,
    err_msg=what,
  )


def _with_floats(case: LossCase, args: tuple, floats: Sequence) -> tuple:
  replaced = list(args)
  for i, x in zip(case.float_args, floats):
    replaced[i] = x
  return tuple(replaced)


def _cast_floats(case: LossCase, args: tuple, dtype) -> tuple:
  return _with_floats(
    case, args, [jnp.asarray(args[i]).astype(dtype) for i in case.float_args]
  )


def _grads(case: LossCase, args, kwargs, **extra):
  """Gradient of the summed output with respect to the float arguments."""

  def total(*floats):
    return jnp.sum(case.call(_with_floats(case, args, floats), kwargs, **extra))

  floats = [jnp.asarray(args[i]) for i in case.float_args]
  return jax.grad(total, argnums=tuple(range(len(floats))))(*floats)


def _assert_finite(tree, what):
  for leaf in jax.tree_util.tree_leaves(tree):
    if not np.all(np.isfinite(np.asarray(leaf, np.float64))):
      raise AssertionError(f"{what}: not finite: {leaf}")


def _batch_indices(case: LossCase, args) -> tuple[int, ...]:
  return (
    case.batch_args if case.batch_args is not None else tuple(range(len(args)))
  )


def _reduction_kw(case: LossCase, reduction: str) -> dict:
  return {"reduction": reduction} if case.reductions else {}


def _some_reductions(case: LossCase) -> list[str | None]:
  """``"none"`` and ``"mean"`` where supported; ``[None]`` (the loss's own
  default) for a loss without a ``reduction``."""
  chosen: list[str | None] = [
    r for r in ("none", "mean") if r in case.reductions
  ]
  return chosen or [None]


def _extra(case: LossCase, reduction: str | None) -> dict:
  return _reduction_kw(case, reduction) if reduction else {}


def _values(case: LossCase, kwargs: dict, reductions: Sequence) -> Callable:
  """``args -> [loss value for each reduction]``: one program under ``jit``
  (the suite compiles one program per check, not one per call or per op)."""

  def values(*args):
    return [case.call(args, kwargs, **_extra(case, r)) for r in reductions]

  return values


def _mask(rng: np.random.Generator, n: int) -> np.ndarray:
  mask = rng.random(n) < 0.5
  mask[0], mask[-1] = True, False
  return mask


def _example_mask(mask: np.ndarray, case: LossCase, args, kwargs) -> np.ndarray:
  """A ``[batch]`` mask shaped to broadcast against the per-example output."""
  rank = len(jax.eval_shape(lambda *a: case.call(a, kwargs), *args).shape)
  return mask.reshape(mask.shape + (1,) * (rank - 1))


# --------------------------------------------------------------------------- #
# properties


def _jitted_values(case: LossCase, seed: int) -> tuple[Callable, dict]:
  """``jit`` of every reduction's value on seed ``seed``'s options, and
  those options: one program per case, shared by :func:`check_jit` and
  :func:`check_vmap`'s loop (the properties of a case run one after the
  other). A case with an unhashable field (a list given for a tuple) gets a
  program of its own."""
  try:
    hash(case)
  except TypeError:
    return _new_jitted_values(case, seed)
  return _cached_jitted_values(case, seed)


def _new_jitted_values(case: LossCase, seed: int) -> tuple[Callable, dict]:
  _, kwargs = case.inputs(seed)
  return jax.jit(_values(case, kwargs, case.reductions or (None,))), kwargs


_cached_jitted_values = functools.lru_cache(maxsize=4)(_new_jitted_values)


def check_jit(case: LossCase, seed: int = 0) -> None:
  """``jax.jit`` gives the eager value, for every supported reduction."""
  args, _ = case.inputs(seed)
  program, kwargs = _jitted_values(case, seed)
  reductions = case.reductions or (None,)
  jitted = program(*args)
  for reduction, value in zip(reductions, jitted, strict=True):
    eager = case.call(args, kwargs, **_extra(case, reduction))
    assert_close(value, eager, what=f"{case.id}: jit != eager ({reduction})")


def check_vmap(case: LossCase, seed: int = 0, copies: int = 3) -> None:
  """``jax.vmap`` over an extra leading axis equals a Python loop, for every
  supported reduction."""
  sets = [case.inputs(seed + k) for k in range(copies)]
  single, kwargs = _jitted_values(case, seed)  # the loop, one program
  stacked = tuple(
    np.stack([s[0][i] for s in sets]) for i in range(len(sets[0][0]))
  )
  reductions = case.reductions or (None,)
  batched = jax.jit(jax.vmap(_values(case, kwargs, reductions)))(*stacked)
  looped = [single(*s[0]) for s in sets]
  for k, reduction in enumerate(reductions):
    assert_close(
      batched[k],
      np.stack([v[k] for v in looped]),
      what=f"{case.id}: vmap != loop ({reduction})",
    )


def check_where_is_slicing(case: LossCase, seed: int = 0) -> None:
  """A ``[batch]`` mask gives what slicing the masked examples out gives."""
  args, kwargs = case.inputs(seed)
  mask = _mask(np.random.default_rng(seed + 100), case.batch)
  where = _example_mask(mask, case, args, kwargs)
  kept = list(args)
  for i in _batch_indices(case, args):
    kept[i] = np.asarray(args[i])[mask]
  sliced = tuple(kept)
  reductions = ("sum", "mean", "none")

  def both(args, sliced, where):  # one program
    return (
      [case.call(args, kwargs, where=where, reduction=r) for r in reductions],
      _values(case, kwargs, reductions)(*sliced),
    )

  got, want = jax.jit(both)(args, sliced, where)
  for reduction, g, w in zip(reductions[:2], got, want):
    assert_close(g, w, what=f"{case.id}: where != slicing ({reduction})")
  masked = np.asarray(got[2])
  assert_close(
    masked[mask], want[2], what=f"{case.id}: where != slicing (none)"
  )
  if not np.all(masked[~mask] == 0):
    raise AssertionError(f"{case.id}: masked-out entries are not exactly 0")


def check_all_masked(case: LossCase, seed: int = 0) -> None:
  """Everything masked: "sum" and "mean" are 0 and the gradient is finite."""
  args, kwargs = case.inputs(seed)
  none = _example_mask(np.zeros(case.batch, bool), case, args, kwargs)
  reductions = ("sum", "mean")

  def everything(args, where):  # one program
    return [
      (
        case.call(args, kwargs, where=where, reduction=r),
        _grads(case, args, kwargs, where=where, reduction=r),
      )
      for r in reductions
    ]

  for reduction, (value, grads) in zip(
    reductions, jax.jit(everything)(args, none)
  ):
    if float(value) != 0.0:
      raise AssertionError(
        f"{case.id}: all masked {reduction} = {value}, not 0"
      )
    _assert_finite(grads, f"{case.id}: gradient with everything masked")


def check_reductions(case: LossCase, seed: int = 0) -> None:
  """ "none", "sum" and "mean" agree, with and without weights."""
  # Eager: these calls reuse the operations compiled by check_jit's eager
  # calls (cheaper than compiling a program of their own).
  args, kwargs = case.inputs(seed)
  values = np.asarray(case.call(args, kwargs, reduction="none"), np.float64)
  assert_close(
    case.call(args, kwargs, reduction="sum"),
    values.sum(),
    rtol=1e-5,
    atol=1e-5,
    what=f"{case.id}: sum != none.sum()",
  )
  if case.mean_of_none:
    assert_close(
      case.call(args, kwargs, reduction="mean"),
      values.mean(),
      rtol=1e-5,
      atol=1e-6,
      what=f"{case.id}: mean != none.mean()",
    )
  weights = np.random.default_rng(seed + 7).uniform(0.5, 2.0, values.shape)
  weights = weights.astype(np.float32)
  weighted = case.call(args, kwargs, weights=weights, reduction="none")
  assert_close(weighted, weights * values, what=f"{case.id}: weights in none")
  if case.mean_of_none:
    assert_close(
      case.call(args, kwargs, weights=weights, reduction="mean"),
      (weights * values).sum() / weights.sum(),
      atol=1e-6,
      what=f"{case.id}: weighted mean",
    )


def check_bfloat16(case: LossCase, seed: int = 0) -> None:
  """bfloat16 inputs are computed in float32 and give a float32 result."""
  args, kwargs = case.inputs(seed)
  half = _cast_floats(case, args, jnp.bfloat16)
  upcast = _cast_floats(case, half, jnp.float32)
  # Eager, like check_reductions: the float32 operations are check_jit's.
  for reduction in case.reductions or (None,):
    extra = _extra(case, reduction)
    out = case.call(half, kwargs, **extra)
    if out.dtype != jnp.float32:
      raise AssertionError(
        f"{case.id}: bfloat16 input gave {out.dtype}, not float32"
      )
    assert_close(
      out,
      case.call(upcast, kwargs, **extra),
      rtol=1e-5,
      atol=1e-5,
      what=f"{case.id}: bfloat16 result",
    )


def check_dtypes(case: LossCase, seed: int = 0) -> None:
  """float32 stays float32 and float64 stays float64 under x64."""
  args, kwargs = case.inputs(seed)
  with jax.enable_x64(True):
    for dtype in (jnp.float32, jnp.float64):
      # The output dtype is fixed at trace time: trace, don't compile.
      floats = _cast_floats(case, args, dtype)
      out = jax.eval_shape(lambda *a: case.call(a, kwargs), *floats)
      if out.dtype != dtype:
        raise AssertionError(
          f"{case.id}: {np.dtype(dtype).name} input gave {out.dtype}"
        )


def check_edge_cases(case: LossCase, seed: int = 0) -> None:
  """Values and gradients are finite at the loss's edge inputs."""
  if case.edge_inputs is None:
    return
  edges = list(case.edge_inputs())
  reductions = _some_reductions(case)

  def everything(all_args):  # one program for every edge input
    return [
      [
        (
          case.call(args, kwargs, **_extra(case, r)),
          _grads(case, args, kwargs, **_extra(case, r)),
        )
        for r in reductions
      ]
      for args, (_, kwargs) in zip(all_args, edges)
    ]

  results = jax.jit(everything)([args for args, _ in edges])
  for k, per_reduction in enumerate(results):
    for value, grads in per_reduction:
      _assert_finite(value, f"{case.id}: value at edge input {k}")
      _assert_finite(grads, f"{case.id}: gradient at edge input {k}")


def check_gradients(case: LossCase, seed: int = 0) -> None:
  """Analytic gradients match finite differences in float64."""
  args, kwargs = case.inputs(seed)
  with jax.enable_x64(True):
    args64 = _cast_floats(case, args, jnp.float64)

    def f(*floats):
      return case.call(_with_floats(case, args64, floats), kwargs)

    # test_util.check_grads(f, order=1), with f, its JVP and its VJP in one
    # compiled program (jit of jvp / vjp, not jvp / vjp of a jitted f)
    # instead of run op by op or compiled one by one; a call passes zero
    # tangents or cotangents for the parts it does not read.
    floats = tuple(args64[i] for i in case.float_args)
    fwd, rev = "fwd" in case.grad_modes, "rev" in case.grad_modes
    zero_tangents = tuple(np.zeros_like(x) for x in floats)
    zero_cotangent = jax.tree.map(
      lambda s: np.zeros(s.shape, s.dtype), jax.eval_shape(f, *floats)
    )

    @jax.jit
    def everything(primals, tangents, cotangent):
      if fwd:
        out, out_tangent = jax.jvp(f, primals, tangents)
      else:
        out, out_tangent = f(*primals), None
      pulled = jax.vjp(f, *primals)[1](cotangent) if rev else None
      return out, out_tangent, pulled

    def value(*primals):
      return everything(primals, zero_tangents, zero_cotangent)[0]

    if fwd:
      test_util.check_jvp(
        value,
        lambda p, t: everything(p, t, zero_cotangent)[:2],
        floats,
        eps=1e-6,
      )
    if rev:
      test_util.check_vjp(
        value,
        lambda *p: (
          value(*p),
          lambda ct: everything(p, zero_tangents, ct)[2],
        ),
        floats,
        eps=1e-6,
      )


def check_errors(case: LossCase, seed: int = 0) -> None:
  """Wrong shapes, dtypes and reductions raise at trace time, with a message
  that names the loss and the argument."""
  inputs = case.inputs(seed)
  name = case.fn.__name__
  parameters = list(inspect.signature(case.fn).parameters)

  def expect(error, args, kwargs, what, arguments):
    try:
      jax.eval_shape(lambda *a: case.call(a, kwargs), *args)
    except error as e:
      message = str(e)
      if name not in message:
        raise AssertionError(
          f"{case.id}: {what} error does not name the loss: {e}"
        ) from e
      if not any(f"`{a}`" in message or f"{a}=" in message for a in arguments):
        raise AssertionError(
          f"{case.id}: {what} error names none of {arguments}: {e}"
        ) from e
      return
    raise AssertionError(f"{case.id}: {what} did not raise {error.__name__}")

  bad = case.wrong_shape(inputs) if case.wrong_shape else None
  if bad is not None:
    expect(ValueError, *bad, "wrong shape", parameters)
  args, kwargs = inputs
  first = case.float_args[0]
  integer = list(args)
  integer[first] = np.asarray(args[first]).astype(np.int32)
  expect(TypeError, tuple(integer), kwargs, "integer input", parameters)
  if case.reductions:
    bad_reduction = {**kwargs, "reduction": "average"}
    expect(ValueError, args, bad_reduction, "bad reduction", ["reduction"])


def check_empty_batch(case: LossCase, seed: int = 0) -> None:
  """A batch of 0 examples: ``"none"`` is empty, ``"sum"`` and ``"mean"``
  are 0, and the gradients are finite (one compiled program)."""
  args, kwargs = case.inputs(seed, batch=0)
  floats = [jnp.asarray(args[i]) for i in case.float_args]
  last = case.reductions[-1]

  def everything(*floats):
    values = {
      r: case.call(_with_floats(case, args, floats), kwargs, reduction=r)
      for r in case.reductions
    }
    grads = jax.grad(
      lambda *f: jnp.sum(
        case.call(_with_floats(case, args, f), kwargs, reduction=last)
      ),
      argnums=tuple(range(len(floats))),
    )(*floats)
    return values, grads

  values, grads = jax.jit(everything)(*floats)
  for reduction, value in values.items():
    value = np.asarray(value)
    if reduction == "none" and value.size != 0:
      raise AssertionError(f"{case.id}: empty batch, none = {value}")
    if reduction != "none" and float(value) != 0.0:
      raise AssertionError(f"{case.id}: empty batch, {reduction} = {value}")
  _assert_finite(grads, f"{case.id}: gradient of an empty batch ({last})")


def check_invalid_labels(case: LossCase, seed: int = 0) -> None:
  """A label outside ``[0, num_classes)`` gives NaN for its example, never
  another class's value; masked out by ``where`` it is dropped; and
  :func:`jaxloss.checked` reports it, naming the loss and the argument."""
  from jax.experimental import checkify

  from jaxloss._core.value_checks import checked

  assert case.label_arg is not None and case.num_classes is not None
  args, kwargs = case.inputs(seed)
  labels = np.asarray(args[case.label_arg])
  bad = labels.copy()
  flat = bad.reshape(labels.shape[0], -1)
  flat[0, 0], flat[1, 0] = -1, case.num_classes
  wrong: np.ndarray = np.zeros(labels.shape, bool)
  wrong.reshape(labels.shape[0], -1)[:2, 0] = True
  bad_args = tuple(
    bad if i == case.label_arg else x for i, x in enumerate(args)
  )
  keep = np.ones(case.batch, bool)
  keep[:2] = False
  where = _example_mask(keep, case, args, kwargs)

  def call(labels, floats, **extra):
    chosen = _with_floats(case, args, floats)
    chosen = tuple(
      labels if i == case.label_arg else x for i, x in enumerate(chosen)
    )
    return case.call(chosen, kwargs, **extra)

  def everything(good, bad, *floats):  # one compiled program
    def masked(labels, floats):
      return call(labels, floats, where=where, reduction="mean")

    return (
      call(good, floats, reduction="none"),
      call(bad, floats, reduction="none"),
      masked(bad, floats),
      masked(good, floats),
      jax.grad(lambda *f: masked(bad, f), argnums=tuple(range(len(floats))))(
        *floats
      ),
    )

  floats = [jnp.asarray(args[i]) for i in case.float_args]
  want, got, masked_bad, masked_good, grads = jax.jit(everything)(
    labels, bad, *floats
  )
  want, got = np.asarray(want), np.asarray(got)
  if got.shape != labels.shape:  # per-example values of per-element labels
    per_example = wrong.reshape(labels.shape[0], -1).any(axis=1)
    per_example = per_example.reshape((-1,) + (1,) * (got.ndim - 1))
    wrong = np.broadcast_to(per_example, got.shape)
  if not np.all(np.isnan(got[wrong])):
    raise AssertionError(
      f"{case.id}: labels -1 and {case.num_classes} gave {got[wrong]}, not NaN"
    )
  assert_close(got[~wrong], want[~wrong], what=f"{case.id}: other examples")
  assert_close(
    masked_bad,
    masked_good,
    what=f"{case.id}: masked-out invalid labels are dropped",
  )
  _assert_finite(grads, f"{case.id}: gradient with masked-out invalid labels")
  name = list(inspect.signature(case.fn).parameters)[case.label_arg]
  try:
    checked(case.fn)(*bad_args, **kwargs)
  except checkify.JaxRuntimeError as e:
    if case.fn.__name__ not in str(e) or f"`{name}`" not in str(e):
      raise AssertionError(
        f"{case.id}: checked's report names neither the loss nor `{name}`: {e}"
      ) from e
  else:
    raise AssertionError(f"{case.id}: checked did not report labels -1, C")


MAGNITUDES = (1e15, 1e19, 1e30)  # the huge-magnitude check's input scales
_FLOAT32_MAX = float(np.finfo(np.float32).max)


def check_huge_magnitudes(case: LossCase, seed: int = 0) -> None:
  """Inputs scaled by 1e15, 1e19 and 1e30 (within ``max_magnitude``): the
  float32 value and gradients equal the float64 ones computed from the same
  inputs wherever those are representable in float32 (relative to the
  largest of them, 1e-4), and are never NaN. One compiled program per dtype
  (``vmap`` over the scales)."""
  args, kwargs = case.inputs(seed)
  scaled = (
    case.float_args if case.magnitude_args is None else case.magnitude_args
  )
  extra = {"reduction": "sum"} if "sum" in case.reductions else {}
  scales = [
    s
    for s in MAGNITUDES
    if case.max_magnitude is None or s <= case.max_magnitude
  ]
  if not scales or not scaled:
    return

  def total(*floats):
    return jnp.sum(case.call(_with_floats(case, args, floats), kwargs, **extra))

  step = jax.jit(
    jax.vmap(
      jax.value_and_grad(total, argnums=tuple(range(len(case.float_args))))
    )
  )
  floats = [
    np.stack(
      [
        np.asarray(
          np.asarray(args[i], np.float64) * (s if i in scaled else 1),
          np.float32,
        )
        for s in scales
      ]
    )
    for i in case.float_args
  ]
  got = step(*floats)
  with jax.enable_x64(True):
    want = step(*(x.astype(np.float64) for x in floats))
  for k, (g_all, w_all) in enumerate(
    zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True)
  ):
    for j, scale in enumerate(scales):
      g = np.atleast_1d(np.asarray(g_all[j], np.float64))
      w = np.atleast_1d(np.asarray(w_all[j], np.float64))
      what = f"{case.id} at inputs x {scale:g}: " + (
        "value" if k == 0 else f"gradient {k - 1}"
      )
      if np.any(np.isnan(g)):
        raise AssertionError(f"{what} is NaN (float64: {w})")
      fits: np.ndarray = np.isfinite(w) & (np.abs(w) <= _FLOAT32_MAX)
      if np.any(fits):
        largest = np.max(np.abs(w[fits]))
        error = np.max(np.abs(g[fits] - w[fits]))
        if not error <= 1e-4 * largest:
          raise AssertionError(f"{what}: {g} instead of {w}")


PROPERTIES = {
  "jit": check_jit,
  "vmap": check_vmap,
  "where_is_slicing": check_where_is_slicing,
  "all_masked": check_all_masked,
  "reductions": check_reductions,
  "bfloat16": check_bfloat16,
  "dtypes": check_dtypes,
  "edge_cases": check_edge_cases,
  "gradients": check_gradients,
  "errors": check_errors,
  "empty_batch": check_empty_batch,
  "invalid_labels": check_invalid_labels,
  "huge_magnitudes": check_huge_magnitudes,
}


def applicable(case: LossCase, prop: str) -> bool:
  """Whether property ``prop`` applies to ``case``."""
  if prop in ("where_is_slicing", "all_masked", "reductions", "empty_batch"):
    return case.per_example and bool(case.reductions)
  if prop == "invalid_labels":
    return case.label_arg is not None and case.per_example
  return True


def check_loss(case: LossCase, seed: int = 0) -> None:
  """Runs every applicable property on ``case``; raises on the first failure."""
  for prop, check in PROPERTIES.items():
    if applicable(case, prop):
      check(case, seed)
