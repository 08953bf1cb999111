"""Input helpers shared by the regression parts (private to the family)."""

from __future__ import annotations

from collections.abc import Sequence

import jax
from jax.typing import ArrayLike

from jaxloss._core import checks
from jaxloss._core.reduction import split_where

Axis = int | Sequence[int] | None


def pair(
  predictions: ArrayLike, targets: ArrayLike, *, arg: str = "predictions"
) -> tuple[jax.Array, jax.Array]:
  """Floating predictions, and same-shaped targets (float, int or bool) cast
  to their dtype."""
  predictions = checks.as_float(arg, predictions)
  targets = checks.as_targets("targets", targets, predictions)
  checks.same_shape(**{arg: predictions, "targets": targets})
  return predictions, targets


def reduced_axes(
  x: jax.Array, axis: Axis, where: ArrayLike | None
) -> tuple[tuple[int, ...], jax.Array | None, jax.Array | None]:
  """Sorted axes of ``axis`` (int, tuple or ``None`` for all) and the masks of
  :func:`jaxloss._core.reduction.split_where`. A mask of at most the
  per-example rank drops examples (NumPy broadcasting against the per-example
  shape); one of the input's rank drops elements."""
  axes = tuple(sorted(checks.axes(axis, x.ndim)))
  if where is None:
    return axes, None, None
  where = checks.as_mask("where", where)
  per_example = tuple(d for i, d in enumerate(x.shape) if i not in axes)
  if where.ndim <= len(per_example):
    where = checks.broadcast_mask("where", where, per_example)
  elif where.ndim != x.ndim:
    raise checks.fail(
      f"argument `where` of shape {where.shape} must have the input's shape "
      f"{x.shape} (drops elements) or at most the rank of the per-example "
      f"shape {per_example} (drops examples)."
    )
  elements, examples = split_where(where, x.shape, axes)
  return axes, elements, examples
