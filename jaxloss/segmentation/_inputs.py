"""Checked inputs of the segmentation losses (private to the family).

Layout (optax's): channel-last ``predictions`` and ``targets`` of one shape
``[batch, *spatial, num_classes]``. The loss sums over ``axis`` (by default
every axis but the first and the last), so there is one value per image, and
the class axis is combined by the loss (``class_reduction``). ``where`` is read
by rank:

* the pixel shape (the input's shape without the class axis): ``False``
  pixels take no part in any sum; an image without a pixel left is dropped;
* the per-image shape (the output's shape): ``False`` drops the image;
* with ``class_reduction="none"`` also the output's shape ``[..., classes]``:
  ``False`` drops single (image, class) entries.

When two of these ranks coincide the first reading wins.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss._core import checks, value_checks

ClassReduction = Literal["mean", "sum", "none"]
CLASS_REDUCTIONS: tuple[ClassReduction, ...] = ("mean", "sum", "none")
Axis = int | Sequence[int] | None


class Inputs(NamedTuple):
  """Checked inputs: arrays of one shape and the static layout."""

  predictions: jax.Array
  targets: jax.Array
  axes: tuple[int, ...]  # summed (spatial) axes, non-negative
  pixels: jax.Array | None  # mask of the pixel shape, or None
  outputs: jax.Array | None  # mask of the [..., classes] output, or None
  class_weights: jax.Array | None  # [num_classes] or [1], or None


def _is_probability_input(args: dict) -> bool:
  return not args.get("apply_softmax", args.get("apply_sigmoid", True))


def predictions_rule(args: dict, arg: str) -> tuple[jax.Array, str]:
  """Value rule: predictions are probabilities when no softmax is applied."""
  x = jnp.asarray(args[arg])
  if _is_probability_input(args):
    return jnp.all((x >= 0) & (x <= 1)), "must lie in [0, 1] (probabilities)"
  return jnp.array(True), ""


# The value rules of every segmentation loss, for ``@loss(**RULES)``.
RULES = {"predictions": predictions_rule, "targets": value_checks.unit_interval}


def _expand_like_optax(
  predictions: jax.Array, targets: jax.Array
) -> tuple[jax.Array, jax.Array]:
  """optax's ``dice_loss`` rule: an array one rank short gets a class axis."""
  if predictions.ndim == targets.ndim - 1:
    predictions = predictions[..., None]
  if targets.ndim == predictions.ndim - 1:
    targets = targets[..., None]
  return predictions, targets


def _summed_axes(axis: Axis, ndim: int) -> tuple[int, ...]:
  """``axis`` as sorted non-negative ints; ``None``: all but the first and
  the last. The class axis (the last) cannot be summed."""
  if axis is None:
    return tuple(range(1, ndim - 1))
  out = checks.axes(axis, ndim)
  if ndim - 1 in out:
    raise checks.fail(
      f"`axis` {axis!r} includes the class axis (the last); it names the "
      "spatial axes to sum over."
    )
  return tuple(sorted(out))


def _class_weights(
  class_weights: ArrayLike | None, num_classes: int, dtype: jnp.dtype
) -> jax.Array | None:
  """``[num_classes]`` (or ``[1]``) class weights in ``dtype``."""
  if class_weights is None:
    return None
  class_weights = jnp.asarray(class_weights)
  if not (
    jnp.issubdtype(class_weights.dtype, jnp.floating)
    or jnp.issubdtype(class_weights.dtype, jnp.integer)
  ):
    raise checks.fail(
      f"argument `class_weights` must be numeric, got {class_weights.dtype}.",
      TypeError,
    )
  if class_weights.ndim != 1 or class_weights.shape[0] not in (1, num_classes):
    raise checks.fail(
      f"argument `class_weights` must have shape ({num_classes},), got "
      f"{class_weights.shape}."
    )
  return class_weights.astype(dtype)


def _read_where(
  where: ArrayLike | None,
  pixel_shape: tuple[int, ...],
  axes: tuple[int, ...],
  class_reduction: str,
) -> tuple[jax.Array | None, jax.Array | None]:
  """``(pixel mask, output mask)`` read from ``where`` by its rank."""
  if where is None:
    return None, None
  where = checks.as_mask("where", where)
  image_rank = len(pixel_shape) - len(axes)
  if where.ndim == len(pixel_shape):
    pixels = checks.broadcast_mask("where", where, pixel_shape, same_rank=True)
    return pixels, None
  if where.ndim == image_rank:
    image_shape = tuple(d for i, d in enumerate(pixel_shape) if i not in axes)
    where = checks.broadcast_mask("where", where, image_shape, same_rank=True)
    return jnp.broadcast_to(jnp.expand_dims(where, axes), pixel_shape), None
  if class_reduction == "none" and where.ndim == image_rank + 1:
    return None, where
  ranks = sorted(
    {len(pixel_shape), image_rank}
    | ({image_rank + 1} if class_reduction == "none" else set())
  )
  raise checks.fail(
    f"`where` of shape {where.shape} must have the pixel shape "
    f"{tuple(pixel_shape)} (rank {len(pixel_shape)}) or the per-image "
    f"shape (rank {image_rank}); allowed ranks: {ranks}."
  )


def read(
  predictions: ArrayLike,
  targets: ArrayLike,
  *,
  axis: Axis = None,
  where: ArrayLike | None = None,
  class_weights: ArrayLike | None = None,
  class_reduction: str = "mean",
  expand: bool = True,
) -> Inputs:
  """Checks and converts the arrays, reads ``axis``, ``where`` and the class
  weights."""
  predictions = checks.as_float("predictions", predictions)
  targets = checks.as_targets("targets", targets, predictions)
  if expand:
    predictions, targets = _expand_like_optax(predictions, targets)
  checks.same_shape(predictions=predictions, targets=targets)
  checks.min_rank("predictions", predictions, 1, "the class axis is the last")
  checks.option("class_reduction", class_reduction, CLASS_REDUCTIONS)
  axes = _summed_axes(axis, predictions.ndim)
  pixels, outputs = _read_where(
    where, predictions.shape[:-1], axes, class_reduction
  )
  weights = _class_weights(
    class_weights, predictions.shape[-1], predictions.dtype
  )
  return Inputs(predictions, targets, axes, pixels, outputs, weights)
