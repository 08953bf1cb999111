"""Trace-time checks of shapes, dtypes and options, with messages that name the loss.

The checks wrap chex's static assertions (they run while tracing and cost
nothing under ``jit``) and turn their ``AssertionError`` into the ``ValueError``
(shape, option) or ``TypeError`` (dtype) that optax raises, so code written
against optax keeps working.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import chex
import jax
import jax.numpy as jnp
import numpy as np

from jaxloss._core import numerics


def _shape_error(name: str, message: str, error: AssertionError | None = None):
  detail = f" ({error})" if error is not None else ""
  return ValueError(f"{name}: {message}{detail}")


def as_float(name: str, arg: str, x) -> jax.Array:
  """``jnp.asarray(x)``, which must be floating; float16/bfloat16 become float32."""
  x = jnp.asarray(x)
  try:
    chex.assert_type(x, float)
  except AssertionError:
    raise TypeError(
      f"{name}: argument `{arg}` must be a floating array, got dtype "
      f"{x.dtype} with shape {x.shape}."
    ) from None
  return numerics.upcast(x)


def as_labels(name: str, arg: str, x) -> jax.Array:
  """``jnp.asarray(x)``, which must hold integer class indices."""
  x = jnp.asarray(x)
  if not jnp.issubdtype(x.dtype, jnp.integer):
    raise TypeError(
      f"{name}: argument `{arg}` must hold integer class indices, got dtype "
      f"{x.dtype} with shape {x.shape}."
    )
  return x


def as_targets(name: str, arg: str, x, like: jax.Array) -> jax.Array:
  """Soft or binary targets (float, int or bool), cast to ``like``'s dtype."""
  x = jnp.asarray(x)
  if not (
    jnp.issubdtype(x.dtype, jnp.floating)
    or jnp.issubdtype(x.dtype, jnp.integer)
    or x.dtype == jnp.bool_
  ):
    raise TypeError(f"{name}: argument `{arg}` must be numeric, got {x.dtype}.")
  return x.astype(like.dtype)


def as_mask(name: str, arg: str, x) -> jax.Array:
  """``jnp.asarray(x)``, which must be boolean."""
  x = jnp.asarray(x)
  if x.dtype != jnp.bool_:
    raise TypeError(
      f"{name}: argument `{arg}` must be a boolean mask, got dtype {x.dtype} "
      f"with shape {x.shape}."
    )
  return x


def floats(name: str, **arrays) -> tuple[jax.Array, ...]:
  """Converts each named array to a float array, all of one common dtype."""
  converted = [as_float(name, arg, x) for arg, x in arrays.items()]
  dtype = jnp.result_type(*converted)
  return tuple(x.astype(dtype) for x in converted)


def same_shape(name: str, **arrays) -> None:
  """All named arrays have one shape; never a silent broadcast."""
  items = list(arrays.items())
  try:
    chex.assert_equal_shape([x for _, x in items])
  except AssertionError:
    shapes = ", ".join(f"`{arg}` {tuple(np.shape(x))}" for arg, x in items)
    raise _shape_error(
      name, f"arguments must have the same shape, got {shapes}."
    )


def same_shape_floats(name: str, **arrays) -> tuple[jax.Array, ...]:
  """:func:`floats` followed by :func:`same_shape`."""
  converted = floats(name, **arrays)
  same_shape(name, **dict(zip(arrays, converted)))
  return converted


def rank(name: str, arg: str, x, expected: int | Sequence[int]) -> None:
  """``x`` has rank ``expected`` (an int, or any of several ints)."""
  if not isinstance(expected, int):
    expected = set(expected)
  try:
    chex.assert_rank(x, expected)
  except AssertionError:
    raise _shape_error(
      name,
      f"argument `{arg}` must have rank {expected}, got shape "
      f"{tuple(np.shape(x))}.",
    )


def shape(
  name: str, arg: str, x, expected: Sequence[int | None], what: str = ""
) -> None:
  """``x.shape == expected`` (``None`` entries match any size)."""
  try:
    chex.assert_shape(x, tuple(expected))
  except AssertionError:
    want = tuple("*" if d is None else d for d in expected)
    extra = f" ({what})" if what else ""
    raise _shape_error(
      name,
      f"argument `{arg}` must have shape {want}{extra}, got "
      f"{tuple(np.shape(x))}.",
    )


def labels_for(
  name: str,
  labels: jax.Array,
  logits: jax.Array,
  axis: int,
  logits_arg: str = "logits",
  labels_arg: str = "labels",
) -> None:
  """Integer labels have the logits' shape without the class axis."""
  expected = tuple(int(d) for d in np.delete(np.array(logits.shape), axis))
  if tuple(labels.shape) != expected:
    raise _shape_error(
      name,
      f"argument `{labels_arg}` must have shape {expected} (the shape "
      f"of `{logits_arg}` {tuple(logits.shape)} without axis {axis}), got "
      f"{tuple(labels.shape)}.",
    )


def broadcast_mask(
  name: str, arg: str, where, shape_: Sequence[int], *, same_rank: bool = False
) -> jax.Array:
  where = as_mask(name, arg, where)
  return _broadcast(name, arg, where, tuple(shape_), same_rank)


def broadcast_weights(
  name: str, arg: str, weights, like: jax.Array, *, same_rank: bool = False
) -> jax.Array:
  weights = jnp.asarray(weights)
  if not (
    jnp.issubdtype(weights.dtype, jnp.floating)
    or jnp.issubdtype(weights.dtype, jnp.integer)
  ):
    raise TypeError(
      f"{name}: argument `{arg}` must be numeric, got {weights.dtype}."
    )
  return _broadcast(
    name, arg, weights.astype(like.dtype), like.shape, same_rank
  )


def _broadcast(
  name: str, arg: str, x: jax.Array, target: tuple, same_rank: bool
) -> jax.Array:
  """Broadcasts ``x`` to ``target``. With ``same_rank``, ``x`` must be a
  scalar or have ``target``'s rank: a ``[batch]`` mask against a
  ``[batch, k]`` output would align with ``k``, silently, when the sizes
  agree, so it is an error (pass ``[batch, 1]``)."""
  if same_rank and x.ndim not in (0, len(target)):
    raise _shape_error(
      name,
      f"argument `{arg}` of shape {x.shape} must be a scalar or have "
      f"the rank of the per-example shape {target} (size-1 axes broadcast; "
      f"e.g. a [batch] mask for a [batch, k] loss is [batch, 1]).",
    )
  try:
    chex.assert_is_broadcastable(x.shape, target)
  except AssertionError:
    raise _shape_error(
      name,
      f"argument `{arg}` of shape {x.shape} does not broadcast to the "
      f"per-example shape {target}.",
    )
  return jnp.broadcast_to(x, target)


def scalar(name: str, arg: str, value) -> jax.Array:
  """A scalar hyper-parameter (Python number or traced array) as an array."""
  value = jnp.asarray(value)
  rank(name, arg, value, 0)
  return value


def chunk_size(name: str, value) -> int | None:
  """``None`` or a positive Python int (a static ``chunk_size``)."""
  if value is None:
    return None
  if (
    not isinstance(value, numbers.Integral)
    or isinstance(value, bool)
    or value < 1
  ):
    raise ValueError(
      f"{name}: `chunk_size` must be None or a positive int, got {value!r}."
    )
  return int(value)


def option(name: str, arg: str, value: Any, valid: Sequence[Any]) -> None:
  """A static option must be one of ``valid``."""
  if value not in valid:
    raise ValueError(
      f"{name}: unknown {arg}={value!r}; valid values are "
      f"{', '.join(repr(v) for v in valid)}."
    )


def _is_static_number(value) -> bool:
  return isinstance(value, numbers.Real) and not isinstance(value, bool)


def positive(name: str, arg: str, value) -> None:
  """A hyper-parameter given as a Python number must be > 0 (traced values pass)."""
  if _is_static_number(value) and not value > 0:
    raise ValueError(f"{name}: `{arg}` must be > 0, got {value}.")


def nonnegative(name: str, arg: str, value) -> None:
  """A hyper-parameter given as a Python number must be >= 0 (traced values pass)."""
  if _is_static_number(value) and not value >= 0:
    raise ValueError(f"{name}: `{arg}` must be >= 0, got {value}.")


def in_unit_interval(
  name: str, arg: str, value, *, closed: bool = True
) -> None:
  """A Python-number hyper-parameter must lie in [0, 1] (or [0, 1))."""
  if _is_static_number(value):
    ok = 0 <= value <= 1 if closed else 0 <= value < 1
    if not ok:
      interval = "[0, 1]" if closed else "[0, 1)"
      raise ValueError(f"{name}: `{arg}` must lie in {interval}, got {value}.")


def canonical_axis(name: str, axis, ndim: int) -> int:
  """A single integer axis, made non-negative."""
  if not isinstance(axis, (int, np.integer)) or isinstance(axis, bool):
    raise TypeError(f"{name}: `axis` must be an int, got {axis!r}.")
  if not -ndim <= axis < ndim:
    raise ValueError(
      f"{name}: axis {axis} is out of bounds for an input of rank {ndim}."
    )
  return int(axis) % ndim
