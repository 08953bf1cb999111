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

# optax's dice_loss accepts sums with `jnp.allclose(sums, 1.0, rtol=1e-5)`,
# i.e. |sum - 1| <= 1e-8 + 1e-5 * 1.
_SUM_TOLERANCE = 1e-8 + 1e-5


def sum_tolerance(dtype: jnp.dtype) -> float:
  """How far from 1 a pixel's class probabilities may sum: optax's
  tolerance, or the machine epsilon of a 16-bit input (rounding each
  probability to bfloat16 alone moves the sum by up to 2^-8)."""
  return max(_SUM_TOLERANCE, float(jnp.finfo(dtype).eps))


def distribution_sums(
  predictions: jax.Array, pixels: jax.Array | None, dtype: jnp.dtype
) -> tuple[jax.Array, jax.Array, jax.Array]:
  """``(ok, lowest, highest)``: whether every unmasked pixel's values sum
  to 1 over the class axis (within :func:`sum_tolerance`; NaN fails), and
  the range of those sums (``inf``/``-inf`` when every pixel is masked)."""
  sums = jnp.sum(predictions.astype(jnp.float32), axis=-1)
  ok = jnp.abs(sums - 1) <= sum_tolerance(dtype)
  if pixels is None:
    return jnp.all(ok), jnp.min(sums), jnp.max(sums)
  return (
    jnp.all(ok | ~pixels),
    jnp.min(jnp.where(pixels, sums, jnp.inf)),
    jnp.max(jnp.where(pixels, sums, -jnp.inf)),
  )


def checks_distributions(apply_softmax: bool, num_classes: int) -> bool:
  """optax's ``dice_loss`` checks probabilities given without a softmax;
  jaxloss only with several classes (a single channel's probability need
  not be 1: optax 0.2.8 checks it too, which breaks its
  ``binary_dice_loss(apply_sigmoid=False)``)."""
  return not apply_softmax and num_classes > 1


def check_distributions(
  x: Inputs, apply_softmax: bool, dtype: jnp.dtype
) -> None:
  """optax's ``ValueError`` when probabilities given with
  ``apply_softmax=False`` do not sum to 1 over the class axis: only for
  several classes, only where the values are concrete (not a
  ``jax.core.Tracer``, the test ``jaxloss.distributed.shard`` uses: eager
  calls, not under ``jit``, ``vmap`` or ``grad``), and not for pixels
  masked by ``where``. Traced values are
  ``jaxloss.checked``'s job (:func:`distributions_rule`)."""
  p = x.predictions
  if not checks_distributions(apply_softmax, p.shape[-1]) or isinstance(
    p, jax.core.Tracer
  ):
    return
  ok, low, high = distribution_sums(p, x.pixels, dtype)
  # Concrete inputs still give a tracer inside a trace (checkify's).
  if isinstance(ok, jax.core.Tracer):
    return
  if not bool(ok):
    raise checks.fail(
      "argument `predictions`: when apply_softmax=False, predictions must "
      "be valid probability distributions that sum to 1 along the class "
      f"axis (within {sum_tolerance(dtype):.3g}). Found sum range: "
      f"[{float(low):.6f}, {float(high):.6f}]"
    )


def _pixel_mask(args: dict, predictions: jax.Array) -> jax.Array | None:
  """The pixel mask that ``where`` gives (pixel or per-image shape), or
  ``None``; a ``where`` the loss will reject is left for it to report."""
  try:
    axes = _summed_axes(args.get("axis"), predictions.ndim)
    pixels, _ = _read_where(
      args.get("where"), predictions.shape[:-1], axes, "none"
    )
  except (ValueError, TypeError):
    return None
  return pixels


def distributions_rule(args: dict, arg: str) -> tuple[jax.Array, str, dict]:
  """Value rule of ``dice_loss`` and ``multiclass_generalized_dice_loss``:
  :func:`predictions_rule`, and with ``apply_softmax=False`` and several
  classes also :func:`check_distributions`' condition (reporting the range
  of the sums), for traced values."""
  x = jnp.asarray(args[arg])
  t = jnp.asarray(args["targets"])
  x, t = _expand_like_optax(x, t)
  if (
    not jnp.issubdtype(x.dtype, jnp.floating)
    or x.ndim == 0
    or x.shape != t.shape
    or not checks_distributions(args.get("apply_softmax", True), x.shape[-1])
  ):
    ok, what = predictions_rule(args, arg)
    return ok, what, {}
  in_range = jnp.all((x >= 0) & (x <= 1))
  sums_ok, low, high = distribution_sums(x, _pixel_mask(args, x), x.dtype)
  what = (
    "must lie in [0, 1] and sum to 1 along the class axis (within "
    f"{sum_tolerance(x.dtype):.3g}) when apply_softmax=False; found values in "
    "[{min:.6f}, {max:.6f}], sums in [{low:.6f}, {high:.6f}]"
  )
  values = dict(min=jnp.min(x), max=jnp.max(x), low=low, high=high)
  return in_range & sums_ok, what, values


# The rules of the two optax names that check sums: dice_loss and
# multiclass_generalized_dice_loss (optax's calls dice_loss).
DICE_RULES = {**RULES, "predictions": distributions_rule}


def _expand_like_optax(
  predictions: jax.Array, targets: jax.Array
) -> tuple[jax.Array, jax.Array]:
  """optax's ``dice_loss`` rule: an array one rank short gets a class axis."""
  if predictions.ndim == targets.ndim - 1:
    predictions = predictions[..., None]
  if targets.ndim == predictions.ndim - 1:
    targets = targets[..., None]
  return predictions, targets


def _shape_error(predictions: tuple[int, ...], targets: jax.Array) -> Exception:
  """The shape error in the user's shapes (not those after optax's added
  class axis), with the fix for an integer label map."""
  message = (
    f"arguments must have the same shape, got `predictions` {predictions}, "
    f"`targets` {targets.shape}"
  )
  integer = jnp.issubdtype(targets.dtype, jnp.integer)
  if integer and targets.shape == predictions[:-1] and predictions[-1] > 1:
    message += (
      f"; `targets` looks like an integer label map: one-hot encode it "
      f"first, e.g. jax.nn.one_hot(targets, {predictions[-1]})"
    )
  elif abs(targets.ndim - len(predictions)) == 1:
    message += (
      " (an array one rank short of the other gets a class axis of 1, "
      "optax's rule)"
    )
  return checks.fail(message + ".")


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
  given = jnp.asarray(targets)
  targets = checks.as_targets("targets", given, predictions)
  if expand:
    expanded = _expand_like_optax(predictions, targets)
    if expanded[0].shape != expanded[1].shape:
      raise _shape_error(predictions.shape, given)
    predictions, targets = expanded
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
