"""Run-time value checks: :func:`checked` and the rules losses declare.

A loss declares what its values must satisfy in its ``@loss(...)``; the
declaration costs nothing until the user wraps the loss with :func:`checked`,
which runs the rules through :mod:`jax.experimental.checkify`.
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable
from typing import Any, TypeVar

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import checkify

from jaxloss._core import loss as loss_lib

# A rule maps (bound arguments, argument name) to (all good?, what is wrong),
# or to (all good?, what is wrong, values): then ``what`` may name the values
# in braces (``"found {low:.6f}"``), filled in when the check fails.
F = TypeVar("F", bound=Callable[..., Any])
Rule = Callable[
  [dict, str], tuple[jax.Array, str] | tuple[jax.Array, str, dict]
]


def class_index(
  logits_arg: str, axis_arg: str | None = "axis", default_axis: int = -1
) -> Rule:
  """Integer labels lie in ``[0, num_classes)``; ``ignore_index`` and labels
  masked out by ``where`` are allowed: a ``where`` of the labels' shape, or
  of their leading axes (a router's ``[..., tokens]`` mask over its
  ``[..., tokens, k]`` expert indices).

  The library's one label rule (:mod:`jaxloss._core.labels` gives such a
  label NaN); the report names the first offending label, its index, how
  many are out of range and the range of the labels checked, e.g.
  ``must hold class indices in [0, 4); found 7 at index (1, 2), 2 out of
  range, labels in [-1, 7]``.
  """

  def rule(args, arg):
    labels = jnp.asarray(args[arg])
    shape = jnp.shape(args[logits_arg])
    axis = args.get(axis_arg, default_axis) if axis_arg else default_axis
    axes = (
      range(len(shape))
      if axis is None
      else (axis if isinstance(axis, tuple) else (axis,))
    )
    num_classes = math.prod(shape[a] for a in axes)
    exempt = jnp.zeros(labels.shape, bool)
    if args.get("ignore_index") is not None:
      exempt = exempt | (labels == args["ignore_index"])
    where = args.get("where")
    rank = jnp.ndim(where) if where is not None else 0
    if where is not None and jnp.shape(where) == labels.shape[:rank]:
      kept = jnp.asarray(where).reshape(
        labels.shape[:rank] + (1,) * (labels.ndim - rank)
      )
      exempt = exempt | ~kept
    ok = (labels >= 0) & (labels < num_classes) | exempt
    what = f"must hold class indices in [0, {num_classes})"
    if labels.size == 0:
      return jnp.all(ok), what
    return jnp.all(ok), *_first_offender(labels, ok, exempt, what)

  return rule


def _first_offender(
  labels: jax.Array, ok: jax.Array, exempt: jax.Array, what: str
) -> tuple[str, dict]:
  """``what`` extended with the first entry (in row-major order) where
  ``ok`` is false, its index, the count of such entries and the range of
  the entries not ``exempt``; and the values for its placeholders."""
  bad = ~ok.reshape(-1)
  first = jnp.argmax(bad)
  values = {"label": labels.reshape(-1)[first], "count": jnp.sum(bad)}
  index = jnp.unravel_index(first, labels.shape)
  keys = [f"index{i}" for i in range(labels.ndim)]
  values.update(zip(keys, index, strict=True))
  position = ", ".join("{" + k + "}" for k in keys)
  position = f"({position},)" if labels.ndim == 1 else f"({position})"
  at = f" at index {position}" if labels.ndim else ""
  low: float
  high: float
  if jnp.issubdtype(labels.dtype, jnp.integer):
    info = jnp.iinfo(labels.dtype)
    low, high = int(info.max), int(info.min)
  else:
    low, high = float("inf"), float("-inf")
  values["low"] = jnp.min(jnp.where(exempt, low, labels))
  values["high"] = jnp.max(jnp.where(exempt, high, labels))
  what += (
    f"; found {{label}}{at}, {{count}} out of range, labels "
    "in [{low}, {high}]"
  )
  return what, values


def unit_interval(args, arg):
  """Probabilities lie in ``[0, 1]``."""
  x = jnp.asarray(args[arg])
  return jnp.all((x >= 0) & (x <= 1)), "must lie in [0, 1]"


def nonnegative(args, arg):
  """Every entry is >= 0."""
  return jnp.all(jnp.asarray(args[arg]) >= 0), "must be >= 0"


def log_probabilities(args, arg):
  """Log-probabilities are <= 0."""
  return (
    jnp.all(jnp.asarray(args[arg]) <= 0),
    "must hold log-probabilities (<= 0)",
  )


def signs(args, arg):
  """Binary targets are -1 or +1."""
  x = jnp.asarray(args[arg])
  return jnp.all((x == 1) | (x == -1)), "must hold -1 or +1"


def positive(args, arg):
  x = jnp.asarray(args[arg])
  return jnp.all(x > 0), "must be > 0"


def greater_than(bound: float) -> Rule:
  def rule(args, arg):
    x = jnp.asarray(args[arg])
    return jnp.all(x > bound), f"must be > {bound}"

  return rule


def bounded(low=None, high=None, *, mask: str | None = None) -> Rule:
  """Entries lie in ``[low, high]`` (``None``: unbounded on that side).

  A bound is a number or the name of another argument (``"max_val"``).
  Entries where the argument ``mask`` (if given and of the same shape) is
  false or 0 are exempt, so padding may hold anything.
  """

  def rule(args, arg):
    x = jnp.asarray(args[arg])
    lo, hi = (args[b] if isinstance(b, str) else b for b in (low, high))
    ok = jnp.ones(x.shape, bool)
    if lo is not None:
      ok = ok & (x >= lo)
    if hi is not None:
      ok = ok & (x <= hi)
    exempt = None if mask is None else args.get(mask)
    if exempt is not None and jnp.shape(exempt) == x.shape:
      ok = ok | (jnp.asarray(exempt) == 0)
    if low is not None and high is not None:
      what = f"must lie in [{low}, {high}]"
    elif low is not None:
      what = f"must be >= {low}"
    else:
      what = f"must be <= {high}"
    return jnp.all(ok), what

  return rule


def _is_array(x) -> bool:
  return isinstance(x, (jax.Array,)) or hasattr(x, "__array__")


def _is_staged(x: Any) -> bool:
  """A value being traced (``jit``, ``scan``, ``vmap``, ``grad``): its
  checks run as host callbacks when the computation runs."""
  return isinstance(x, jax.core.Tracer)


def _raise_at_run_time(ok: jax.Array, message: str, **values: Any) -> None:
  """:func:`checkify.check` for a staged program: a host callback that
  raises ``ValueError(message.format(**values))`` when ``ok`` is false."""

  def fail(ok, values):
    # np.asarray first: np.all of a jax.Array would dispatch a jax
    # computation from inside the callback, which can deadlock with the
    # running program (seen with 8 CPU devices inside shard_map).
    if not np.all(np.asarray(ok)):
      scalars = {k: np.asarray(v).item() for k, v in values.items()}
      raise ValueError(message.format(**scalars))

  jax.debug.callback(fail, ok, values)


def _is_plain(x: Any) -> bool:
  """None, a bool, number or string, or a tuple of them (a static argument
  that a cached program may bake in)."""
  if isinstance(x, tuple):
    return all(_is_plain(v) for v in x)
  return x is None or isinstance(x, (bool, int, float, complex, str))


def _is_array_tree(x) -> bool:
  """An array, or a pytree (dict, list, tuple, NNX state) of arrays only."""
  leaves = jax.tree.leaves(x)
  return bool(leaves) and all(
    _is_array(leaf) and not isinstance(leaf, str) for leaf in leaves
  )


def checked(loss_fn: F) -> F:
  """Returns ``loss_fn`` with run-time value checks.

  Every floating array argument (or pytree of arrays, such as parameters)
  must be free of NaN and inf, and the loss's own rules (integer labels in
  range, probabilities in [0, 1], positive variances, valid boxes) must hold;
  otherwise a :class:`jax.experimental.checkify.JaxRuntimeError` names the
  loss and the argument. The checks cost a device-to-host sync, so
  they are off unless asked for.

  Eagerly, the checks run through :mod:`jax.experimental.checkify`. Inside
  a transformation (``jax.jit``, ``scan``, ``vmap``, ``grad``,
  ``checkify.checkify`` of a jitted step) a check cannot raise while
  tracing, so it becomes a host callback that raises when the computation
  runs (under ``jit``: a ``JaxRuntimeError`` whose message carries the same
  text). ``loss_fn`` may also be a callable object,
  such as a :mod:`jaxloss.nn` module (its call's array arguments get the
  NaN/inf checks).

  Args:
    loss_fn: a jaxloss loss (its value rules are read from it), or any
      function of arrays (only the NaN/inf checks apply).

  Returns:
    A function with ``loss_fn``'s signature and value that raises
    ``JaxRuntimeError`` when a check fails.

  >>> import jax.numpy as jnp, jaxloss
  >>> safe_bce = jaxloss.checked(jaxloss.binary_cross_entropy)
  >>> safe_bce(jnp.array([0.2, 1.5]), jnp.array([0.0, 1.0]))
  Traceback (most recent call last):
  ...
  jax._src.checkify.JaxRuntimeError: binary_cross_entropy: argument `probabilities` must lie in [0, 1]...
  """  # noqa: E501
  if not callable(loss_fn):
    raise TypeError(f"jaxloss.checked: {loss_fn!r} is not callable.")
  rules = getattr(loss_fn, loss_lib.VALUE_RULES, {})
  signature = inspect.signature(loss_fn)
  # A callable object (a jaxloss.nn module) has no __name__: its class's.
  name = getattr(loss_fn, "__name__", type(loss_fn).__name__)

  def run(static, check, arrays):
    arguments = {**static, **arrays}
    for arg, value in arrays.items():
      floats = [
        x
        for x in jax.tree.leaves(value)
        if jnp.issubdtype(x.dtype, jnp.inexact)
      ]
      if floats:
        check(
          jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in floats])),
          f"{name}: argument `{arg}` contains NaN or inf",
        )
    for arg, rule in rules.items():
      if arguments.get(arg) is not None:
        ok, what, *values = rule(arguments, arg)
        check(ok, f"{name}: argument `{arg}` {what}", **(values or [{}])[0])
    return loss_fn(**arguments)

  # Eagerly: one compiled checkify program, not the checks and the loss run
  # op by op (a compile each); kept per set of static (non-array) arguments
  # when they are plain values. A callable or other object (which may close
  # over state that changes between calls) gets a program for this call only.
  programs: dict[Any, Callable] = {}

  def program(static: dict) -> Callable:
    key: Any = None
    if all(_is_plain(v) for v in static.values()):
      key = tuple((k, type(v), v) for k, v in static.items())
    found = programs.get(key) if key is not None else None
    if found is None:
      found = jax.jit(
        checkify.checkify(functools.partial(run, static, checkify.check))
      )
      if key is not None:
        programs[key] = found
    return found

  @functools.wraps(loss_fn)
  def wrapper(*args, **kwargs):
    bound = signature.bind(*args, **kwargs)
    bound.apply_defaults()
    arrays = {
      k: jax.tree.map(jnp.asarray, v)
      for k, v in bound.arguments.items()
      if not isinstance(v, str) and _is_array_tree(v)
    }
    static = {k: v for k, v in bound.arguments.items() if k not in arrays}
    if any(_is_staged(x) for x in jax.tree.leaves(arrays)):
      return run(static, _raise_at_run_time, arrays)
    error, out = program(static)(arrays)
    error.throw()
    return out

  return wrapper  # type: ignore[return-value]
