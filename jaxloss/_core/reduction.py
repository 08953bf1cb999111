"""The one place where losses are reduced, masked and weighted.

Every loss computes its per-example values and hands them to :func:`reduce`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss._core import checks
from jaxloss._core import loss as loss_lib

Reduction = Literal["none", "sum", "mean", "batchmean"]
REDUCTIONS: tuple[Reduction, ...] = ("none", "sum", "mean", "batchmean")


def validate(reduction: str) -> None:
  """A ``reduction`` must be one of :data:`REDUCTIONS`; the one check of it.

  ``@loss`` calls it for a ``reduction`` given by keyword, before the loss
  computes anything, and :func:`reduce` for every other caller.
  """
  checks.option("reduction", reduction, REDUCTIONS)


def reduce(
  values: ArrayLike,
  reduction: Reduction = "none",
  *,
  weights: ArrayLike | None = None,
  where: ArrayLike | None = None,
) -> jax.Array:
  r"""Reduces per-example loss values, with an optional mask and weights.

  .. math::
    \text{sum} = \sum_{i:\,m_i} w_i \ell_i, \qquad
    \text{mean} = \frac{\sum_{i:\,m_i} w_i \ell_i}{\sum_{i:\,m_i} w_i}, \qquad
    \text{batchmean} = \frac{\sum_{i:\,m_i} w_i \ell_i}{N_0}

  Args:
    values: ``[...]`` per-example loss values.
    reduction: ``"none"`` (weighted values, masked entries exactly 0),
      ``"sum"``, ``"mean"`` (0 with a finite gradient when nothing is
      unmasked), or ``"batchmean"`` (divides by the size of axis 0 of
      ``values``, as ``torch.nn.functional.kl_div`` does; 0 for an empty
      batch, where torch gives NaN).
    weights: optional weights: a scalar, or an array of ``values``' rank
      whose axes match or are 1.
    where: optional boolean mask: a scalar, or an array of ``values``' rank
      whose axes match or are 1; ``False`` entries take no part.

  Returns:
    ``values``' shape for ``"none"``, a scalar otherwise.

  >>> import jax.numpy as jnp, jaxloss
  >>> v = jnp.array([1.0, 2.0, 3.0])
  >>> float(jaxloss.reduce(v, "mean", where=jnp.array([True, True, False])))
  1.5
  >>> float(jaxloss.reduce(v, "mean", where=jnp.zeros(3, bool)))
  0.0
  """
  return loss_lib.named("reduce", _reduce, values, reduction, weights, where)


def _reduce(values, reduction, weights, where) -> jax.Array:
  validate(reduction)
  values = jnp.asarray(values)
  if where is not None:
    where = checks.broadcast_mask("where", where, values.shape, same_rank=True)
  if weights is not None:
    weights = checks.broadcast_weights(
      "weights", weights, values, same_rank=True
    )
    values = weights * values
  if where is not None:
    values = jnp.where(where, values, jnp.zeros((), values.dtype))
  if reduction == "none":
    return values
  total = jnp.sum(values)
  if reduction == "sum":
    return total
  if reduction == "batchmean":  # an empty batch: 0, the all-masked result
    return total / (max(values.shape[0], 1) if values.ndim else 1)
  # "mean": divide by the total weight of the unmasked entries.
  if weights is None:
    if where is None:
      return total / max(values.size, 1)
    denominator = jnp.sum(where, dtype=values.dtype)
  else:
    denominator = jnp.sum(
      weights if where is None else jnp.where(where, weights, 0)
    )
  return total / jnp.where(
    denominator == 0, jnp.ones_like(denominator), denominator
  )


def split_where(
  where: ArrayLike | None, input_shape: Sequence[int], axis: int | Sequence[int]
) -> tuple[jax.Array | None, jax.Array | None]:
  """Reads ``where`` for a loss that reduces ``axis`` of its input.

  A mask of the input's rank drops elements of ``axis`` (as optax's ``where``
  does); a mask of the per-example rank drops whole examples; any other rank
  (but a scalar) is an error.

  Returns:
    ``(element_mask, example_mask)``: the element mask broadcast to
    ``input_shape`` (or ``None``), and the per-example mask, ``True`` where at
    least one element takes part (or ``None``).
  """
  if where is None:
    return None, None
  where = checks.as_mask("where", where)
  axes = tuple(sorted(checks.axes(axis, len(input_shape))))
  if where.ndim == len(input_shape) - len(axes):
    where = jnp.expand_dims(where, axes)
  elements = checks.broadcast_mask("where", where, input_shape, same_rank=True)
  return elements, jnp.any(elements, axis=axes)
