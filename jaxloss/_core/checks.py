"""Trace-time checks of shapes, dtypes and options.

The checks wrap chex's static assertions (they run while tracing and cost
nothing under ``jit``) and turn their ``AssertionError`` into the
``ValueError`` (shape, option) or ``TypeError`` (dtype) that optax raises, so
code written against optax keeps working. Every message starts with the name
of the public loss that is running (recorded by :func:`jaxloss._core.loss.loss`)
and names the argument.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any, TypeGuard

import chex
import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxloss._core import loss as loss_lib
from jaxloss._core import numerics
from jaxloss._core.chunking import ChunkSize


def fail(message: str, error: type[Exception] = ValueError) -> Exception:
  """``error`` whose message starts with the running loss's name."""
  return error(f"{loss_lib.current()}: {message}")


# --------------------------------------------------------------------------- #
# dtypes


def as_float(arg: str, x: ArrayLike) -> jax.Array:
  """``x`` as a floating array; float16/bfloat16 become float32."""
  x = jnp.asarray(x)
  try:
    chex.assert_type(x, float)
  except AssertionError:
    raise fail(
      f"argument `{arg}` must be a floating array, got dtype {x.dtype} "
      f"with shape {x.shape}.",
      TypeError,
    ) from None
  return numerics.upcast(x)


def as_labels(arg: str, x: ArrayLike) -> jax.Array:
  """``x`` as an array of integer class indices."""
  x = jnp.asarray(x)
  if not jnp.issubdtype(x.dtype, jnp.integer):
    raise fail(
      f"argument `{arg}` must hold integer class indices, got dtype "
      f"{x.dtype} with shape {x.shape}.",
      TypeError,
    )
  return x


def as_targets(arg: str, x: ArrayLike, like: jax.Array) -> jax.Array:
  """Soft or binary targets (float, int or bool), cast to ``like``'s dtype."""
  x = jnp.asarray(x)
  if not (jnp.issubdtype(x.dtype, jnp.number) or x.dtype == jnp.bool_):
    raise fail(f"argument `{arg}` must be numeric, got {x.dtype}.", TypeError)
  return x.astype(like.dtype)


def as_mask(arg: str, x: ArrayLike) -> jax.Array:
  """``x`` as a boolean array."""
  x = jnp.asarray(x)
  if x.dtype != jnp.bool_:
    raise fail(
      f"argument `{arg}` must be a boolean mask, got dtype {x.dtype} with "
      f"shape {x.shape}.",
      TypeError,
    )
  return x


def floats(**arrays: ArrayLike) -> tuple[jax.Array, ...]:
  """Each named array as a float array, all of one common dtype."""
  converted = [as_float(arg, x) for arg, x in arrays.items()]
  dtype = jnp.result_type(*converted)
  return tuple(x.astype(dtype) for x in converted)


# --------------------------------------------------------------------------- #
# shapes


def same_shape(**arrays: ArrayLike) -> None:
  """All named arrays have one shape; never a silent broadcast."""
  try:
    chex.assert_equal_shape(list(arrays.values()))
  except AssertionError:
    shapes = ", ".join(
      f"`{arg}` {tuple(np.shape(x))}" for arg, x in arrays.items()
    )
    raise fail(f"arguments must have the same shape, got {shapes}.") from None


def same_shape_floats(**arrays: ArrayLike) -> tuple[jax.Array, ...]:
  """:func:`floats` followed by :func:`same_shape`."""
  converted = floats(**arrays)
  same_shape(**dict(zip(arrays, converted)))
  return converted


def rank(arg: str, x: ArrayLike, expected: int | Sequence[int]) -> None:
  """``x`` has rank ``expected`` (an int, or any of several ints)."""
  allowed = {expected} if isinstance(expected, int) else set(expected)
  try:
    chex.assert_rank(x, allowed)
  except AssertionError:
    want = " or ".join(str(r) for r in sorted(allowed))
    raise fail(
      f"argument `{arg}` must have rank {want}, got shape {tuple(np.shape(x))}."
    ) from None


def min_rank(arg: str, x: ArrayLike, minimum: int, what: str = "") -> None:
  """``x`` has rank ``minimum`` or more (``what`` names the axes)."""
  if np.ndim(x) < minimum:
    extra = f" ({what})" if what else ""
    raise fail(
      f"argument `{arg}` must have rank >= {minimum}{extra}, got shape "
      f"{tuple(np.shape(x))}."
    )


def shape(
  arg: str, x: ArrayLike, expected: Sequence[int | None], what: str = ""
) -> None:
  """``x.shape == expected`` (``None`` entries match any size)."""
  try:
    chex.assert_shape(x, tuple(expected))
  except AssertionError:
    want = tuple("*" if d is None else d for d in expected)
    extra = f" ({what})" if what else ""
    raise fail(
      f"argument `{arg}` must have shape {want}{extra}, got "
      f"{tuple(np.shape(x))}."
    ) from None


def labels_for(
  labels: jax.Array,
  logits: jax.Array,
  axes: int | Sequence[int],
  logits_arg: str = "logits",
  labels_arg: str = "labels",
) -> None:
  """Integer labels have the logits' shape without the class axis (axes)."""
  axes = (axes,) if isinstance(axes, int) else tuple(axes)
  axes = tuple(a % logits.ndim for a in axes)
  expected = tuple(s for a, s in enumerate(logits.shape) if a not in axes)
  if tuple(labels.shape) != expected:
    what = f"axis {axes[0]}" if len(axes) == 1 else f"axes {axes}"
    raise fail(
      f"argument `{labels_arg}` must have shape {expected} (the shape of "
      f"`{logits_arg}` {tuple(logits.shape)} without {what}), got "
      f"{tuple(labels.shape)}."
    )


def broadcast_mask(
  arg: str, where: ArrayLike, target: Sequence[int], *, same_rank: bool = False
) -> jax.Array:
  """A boolean mask broadcast to ``target`` (see :func:`broadcast_to`)."""
  return broadcast_to(arg, as_mask(arg, where), tuple(target), same_rank)


def broadcast_weights(
  arg: str, weights: ArrayLike, like: jax.Array, *, same_rank: bool = False
) -> jax.Array:
  """Numeric weights in ``like``'s dtype, broadcast to its shape."""
  weights = jnp.asarray(weights)
  if not jnp.issubdtype(weights.dtype, jnp.number):
    raise fail(
      f"argument `{arg}` must be numeric, got {weights.dtype}.", TypeError
    )
  return broadcast_to(arg, weights.astype(like.dtype), like.shape, same_rank)


def broadcast_to(
  arg: str, x: jax.Array, target: tuple[int, ...], same_rank: bool
) -> jax.Array:
  """Broadcasts ``x`` to ``target``.

  With ``same_rank``, ``x`` must be a scalar or have ``target``'s rank: a
  ``[batch]`` mask against a ``[batch, k]`` output would align with ``k``,
  silently, when the sizes agree, so it is an error (pass ``[batch, 1]``).
  """
  if same_rank and x.ndim not in (0, len(target)):
    raise fail(
      f"argument `{arg}` of shape {x.shape} must be a scalar or have the "
      f"rank of the per-example shape {target} (size-1 axes broadcast; e.g. "
      f"a [batch] mask for a [batch, k] loss is [batch, 1])."
    )
  try:
    chex.assert_is_broadcastable(x.shape, target)
  except AssertionError:
    raise fail(
      f"argument `{arg}` of shape {x.shape} does not broadcast to the "
      f"per-example shape {target}."
    ) from None
  return jnp.broadcast_to(x, target)


def canonical_axis(axis: Any, ndim: int) -> int:
  """A single integer axis, made non-negative."""
  if not isinstance(axis, (int, np.integer)) or isinstance(axis, bool):
    raise fail(f"`axis` must be an int, got {axis!r}.", TypeError)
  if not -ndim <= axis < ndim:
    raise fail(f"axis {axis} is out of bounds for an input of rank {ndim}.")
  return int(axis) % ndim


def axes(axis: int | Sequence[int] | None, ndim: int) -> tuple[int, ...]:
  """``axis`` (an int, a sequence of distinct ints, or ``None`` for all
  axes) as non-negative ints, in the order given (sort them where the order
  does not matter)."""
  if axis is None:
    return tuple(range(ndim))
  items = tuple(axis) if isinstance(axis, (tuple, list)) else (axis,)
  out = tuple(canonical_axis(a, ndim) for a in items)
  if not out or len(set(out)) != len(out):
    raise fail(f"`axis` {axis!r} must name one or more distinct axes.")
  return out


# --------------------------------------------------------------------------- #
# options and hyper-parameters


def is_static_number(value: Any) -> TypeGuard[float]:
  """Whether a hyper-parameter is a Python (or NumPy) real number, so that
  its value can be checked while tracing; traced arrays are not."""
  return isinstance(value, numbers.Real) and not isinstance(value, bool)


def option(arg: str, value: Any, valid: Sequence[Any]) -> None:
  """A static option must be one of ``valid``."""
  if value not in valid:
    raise fail(
      f"unknown {arg}={value!r}; valid values are "
      f"{', '.join(repr(v) for v in valid)}."
    )


def scalar(arg: str, value: ArrayLike) -> jax.Array:
  """A scalar hyper-parameter (Python number or traced array) as an array."""
  value = jnp.asarray(value)
  rank(arg, value, 0)
  return value


def chunk_size(value: Any) -> ChunkSize:
  """``"auto"``, ``None`` or a positive Python int (a static ``chunk_size``;
  :mod:`jaxloss._core.chunking`)."""
  if value is None:
    return None
  if isinstance(value, str) and value == "auto":
    return "auto"
  if (
    not isinstance(value, numbers.Integral)
    or isinstance(value, bool)
    or value < 1
  ):
    raise fail(
      f"`chunk_size` must be 'auto', None or a positive int, got {value!r}."
    )
  return int(value)


def positive_int(arg: str, value: Any) -> int:
  """A static count or size (iterations, bins, experts, FFT sizes): a Python
  int >= 1, not a bool; returned as an ``int``."""
  if (
    not isinstance(value, numbers.Integral)
    or isinstance(value, bool)
    or value < 1
  ):
    raise fail(f"`{arg}` must be a positive int, got {value!r}.")
  return int(value)


def positive(arg: str, value: Any) -> None:
  """A hyper-parameter given as a number must be > 0 (traced values pass)."""
  if is_static_number(value) and not value > 0:
    raise fail(f"`{arg}` must be > 0, got {value}.")


def nonnegative(arg: str, value: Any) -> None:
  """A hyper-parameter given as a number must be >= 0 (traced values pass)."""
  if is_static_number(value) and not value >= 0:
    raise fail(f"`{arg}` must be >= 0, got {value}.")


def in_unit_interval(arg: str, value: Any, *, closed: bool = True) -> None:
  """A hyper-parameter given as a number must lie in [0, 1] (or [0, 1))."""
  if is_static_number(value):
    ok = 0 <= value <= 1 if closed else 0 <= value < 1
    if not ok:
      interval = "[0, 1]" if closed else "[0, 1)"
      raise fail(f"`{arg}` must lie in {interval}, got {value}.")


def in_range(arg: str, value: Any, low: float, high: float) -> None:
  """A hyper-parameter given as a number must lie in ``[low, high]``."""
  if is_static_number(value) and not low <= value <= high:
    raise fail(f"`{arg}` must lie in [{low}, {high}], got {value}.")
