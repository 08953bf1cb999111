"""Shared machinery of the segmentation losses (private).

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

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxloss._core import checks, numerics
from jaxloss._core import reduction as reduction_lib

CLASS_REDUCTIONS = ("mean", "sum", "none")
_LOG_CLAMP = -100.0  # torch's binary_cross_entropy clamp, for probabilities.


class Inputs(NamedTuple):
  """Checked inputs: arrays of one shape and the static layout."""

  predictions: jax.Array
  targets: jax.Array
  axes: tuple[int, ...]  # summed (spatial) axes, non-negative
  pixels: jax.Array | None  # mask of the pixel shape, or None
  outputs: jax.Array | None  # mask of the [..., classes] output, or None


def _is_probability_input(args) -> bool:
  return not args.get("apply_softmax", args.get("apply_sigmoid", True))


def predictions_rule(args, arg):
  """Value rule: predictions are probabilities when no softmax is applied."""
  x = jnp.asarray(args[arg])
  if _is_probability_input(args):
    return jnp.all((x >= 0) & (x <= 1)), "must lie in [0, 1] (probabilities)"
  return jnp.array(True), ""


def expand_like_optax(predictions, targets):
  """optax's ``dice_loss`` rule: an array one rank short gets a class axis."""
  if predictions.ndim == targets.ndim - 1:
    predictions = predictions[..., None]
  if targets.ndim == predictions.ndim - 1:
    targets = targets[..., None]
  return predictions, targets


def summed_axes(name: str, axis, ndim: int) -> tuple[int, ...]:
  """``axis`` as sorted non-negative ints; ``None``: all but the first and
  the last. The class axis (the last) cannot be summed."""
  if axis is None:
    return tuple(range(1, ndim - 1))
  items = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
  out = []
  for a in items:
    if not isinstance(a, (int, np.integer)) or isinstance(a, bool):
      raise TypeError(
        f"{name}: `axis` must be an int or a tuple of ints, got {axis!r}."
      )
    if not -ndim <= a < ndim:
      raise ValueError(
        f"{name}: axis {a} is out of bounds for inputs of rank {ndim}."
      )
    out.append(int(a) % ndim)
  if ndim - 1 in out:
    raise ValueError(
      f"{name}: `axis` {axis!r} includes the class axis (the "
      f"last); it names the spatial axes to sum over."
    )
  if len(set(out)) != len(out):
    raise ValueError(f"{name}: `axis` {axis!r} repeats an axis.")
  return tuple(sorted(out))


def inputs(
  name: str,
  predictions,
  targets,
  axis,
  where,
  *,
  class_reduction: str = "mean",
  expand: bool = True,
) -> Inputs:
  """Checks and converts the arrays, reads ``axis`` and ``where``."""
  predictions = checks.as_float(name, "predictions", predictions)
  targets = checks.as_targets(name, "targets", targets, predictions)
  if expand:
    predictions, targets = expand_like_optax(predictions, targets)
  checks.same_shape(name, predictions=predictions, targets=targets)
  if predictions.ndim < 1:
    raise ValueError(
      f"{name}: `predictions` needs a class axis (the last), got a scalar."
    )
  checks.option(name, "class_reduction", class_reduction, CLASS_REDUCTIONS)
  axes = summed_axes(name, axis, predictions.ndim)
  pixels, outputs = _read_where(
    name, where, predictions.shape[:-1], axes, class_reduction
  )
  return Inputs(predictions, targets, axes, pixels, outputs)


def _read_where(name, where, pixel_shape, axes, class_reduction):
  if where is None:
    return None, None
  where = checks.as_mask(name, "where", where)
  image_rank = len(pixel_shape) - len(axes)
  if where.ndim == len(pixel_shape):
    return checks.broadcast_mask(
      name, "where", where, pixel_shape, same_rank=True
    ), None
  if where.ndim == image_rank:
    image_shape = tuple(d for i, d in enumerate(pixel_shape) if i not in axes)
    where = checks.broadcast_mask(
      name, "where", where, image_shape, same_rank=True
    )
    return jnp.broadcast_to(jnp.expand_dims(where, axes), pixel_shape), None
  if class_reduction == "none" and where.ndim == image_rank + 1:
    return None, where
  ranks = sorted(
    {len(pixel_shape), image_rank}
    | ({image_rank + 1} if class_reduction == "none" else set())
  )
  raise ValueError(
    f"{name}: `where` of shape {where.shape} must have the pixel shape "
    f"{tuple(pixel_shape)} (rank {len(pixel_shape)}) or the per-image "
    f"shape (rank {image_rank}); allowed ranks: {ranks}."
  )


def class_weights_array(name: str, class_weights, num_classes: int, dtype):
  """``[num_classes]`` (or ``[1]``) class weights in ``dtype``."""
  if class_weights is None:
    return None
  class_weights = jnp.asarray(class_weights)
  if not (
    jnp.issubdtype(class_weights.dtype, jnp.floating)
    or jnp.issubdtype(class_weights.dtype, jnp.integer)
  ):
    raise TypeError(
      f"{name}: argument `class_weights` must be numeric, got "
      f"{class_weights.dtype}."
    )
  if class_weights.ndim != 1 or class_weights.shape[0] not in (1, num_classes):
    raise ValueError(
      f"{name}: argument `class_weights` must have shape "
      f"({num_classes},), got {class_weights.shape}."
    )
  return class_weights.astype(dtype)


def check_reduction(name: str, reduction: str) -> None:
  checks.option(name, "reduction", reduction, reduction_lib.REDUCTIONS)


# --------------------------------------------------------------------------- #
# traced helpers (called inside the jitted cores)


def probabilities(predictions: jax.Array, apply_softmax: bool) -> jax.Array:
  """Sigmoid for one channel, softmax over the last axis otherwise."""
  if not apply_softmax:
    return predictions
  if predictions.shape[-1] == 1:
    return jax.nn.sigmoid(predictions)
  return jax.nn.softmax(predictions, axis=-1)


def log_probability_pair(predictions: jax.Array, apply_softmax: bool):
  """``(log p, log(1 − p))`` per class, finite for any finite input.

  For a softmax, ``log(1 − p_c)`` is ``log1mexp(log p_c)`` for every class
  but the arg-max (where ``p_c ≤ 1/2``, so it is accurate) and the
  log-sum-exp of the other logits minus the full one for the arg-max. For
  probabilities the logs are clamped at −100 (torch's
  ``binary_cross_entropy``).
  """
  if not apply_softmax:
    tiny = jnp.finfo(predictions.dtype).tiny
    return (
      jnp.maximum(jnp.log(jnp.maximum(predictions, tiny)), _LOG_CLAMP),
      jnp.maximum(jnp.log(jnp.maximum(1 - predictions, tiny)), _LOG_CLAMP),
    )
  if predictions.shape[-1] == 1:
    return numerics.log_sigmoid_pair(predictions)
  log_p = jax.nn.log_softmax(predictions, axis=-1)
  num_classes = predictions.shape[-1]
  top = jax.nn.one_hot(
    jnp.argmax(predictions, axis=-1), num_classes, dtype=bool
  )
  others = jnp.where(top, -jnp.inf, predictions)
  log_rest = jax.nn.logsumexp(
    others, axis=-1, keepdims=True
  ) - jax.nn.logsumexp(predictions, axis=-1, keepdims=True)
  below_top = numerics.log1mexp(jnp.where(top, -1.0, log_p))
  return log_p, jnp.where(top, log_rest, below_top)


def masked_sum(x: jax.Array, pixels: jax.Array | None, axes) -> jax.Array:
  """Sum over ``axes`` of ``[..., classes]`` values, masked pixels left out."""
  if pixels is not None:
    x = jnp.where(pixels[..., None], x, jnp.zeros((), x.dtype))
  return jnp.sum(x, axis=axes)


def overlap_sums(probs, targets, pixels, axes, squared: bool):
  """``(Σ p t, Σ p, Σ t)`` per image and class; ``Σ p², Σ t²`` if squared."""
  intersection = masked_sum(probs * targets, pixels, axes)
  if squared:
    probs, targets = jnp.square(probs), jnp.square(targets)
  return (
    intersection,
    masked_sum(probs, pixels, axes),
    masked_sum(targets, pixels, axes),
  )


def tversky_index(intersection, pred_sum, target_sum, smooth, alpha, beta):
  r"""``(I + s) / (I + α (P − I) + β (T − I) + s)``; 1 where the denominator
  is 0 (an empty class predicted empty, ``smooth = 0``)."""
  numerator = intersection + smooth
  denominator = (
    intersection
    + alpha * (pred_sum - intersection)
    + beta * (target_sum - intersection)
    + smooth
  )
  zero = denominator == 0
  return jnp.where(zero, 1, numerator / jnp.where(zero, 1, denominator))


def safe_power(x: jax.Array, gamma) -> jax.Array:
  """``max(x, 0) ** gamma`` with a finite gradient (0) at ``x = 0``."""
  positive = x > 0
  return jnp.where(positive, jnp.where(positive, x, 1) ** gamma, 0)


def combine_classes(
  per_class: jax.Array, class_weights, ignore_background, class_reduction: str
) -> jax.Array:
  """Class weights, then background dropped, then the class reduction."""
  if class_weights is not None:
    shape = (1,) * (per_class.ndim - 1) + class_weights.shape
    per_class = per_class * class_weights.reshape(shape)
  if ignore_background and per_class.shape[-1] > 1:
    per_class = per_class[..., 1:]
  if class_reduction == "mean":
    return jnp.mean(per_class, axis=-1)
  if class_reduction == "sum":
    return jnp.sum(per_class, axis=-1)
  return per_class


def output_mask(values, pixels, outputs, axes, class_reduction):
  """The ``where`` handed to :func:`jaxloss.reduce`: images with a pixel
  left, and the user's (image, class) mask."""
  mask = None
  if pixels is not None:
    mask = jnp.any(pixels, axis=axes)
    if class_reduction == "none":
      mask = mask[..., None]
  if outputs is not None:
    outputs = jnp.broadcast_to(outputs, values.shape)
    mask = (
      outputs
      if mask is None
      else jnp.logical_and(jnp.broadcast_to(mask, values.shape), outputs)
    )
  return mask


# --------------------------------------------------------------------------- #
# the jitted core of every overlap loss (Dice, Jaccard, Tversky, focal
# Tversky, generalised Dice, combo)

_GENERALIZED_EPS = 1e-7  # optax's multiclass_generalized_dice_loss epsilon.


def generalized_class_weights(targets, pixels):
  """optax's weights ``1 / (f_c² + 1e-7)``, normalised to sum to ``C``, with
  ``f_c`` the class's target sum over every unmasked pixel of the batch."""
  axes = tuple(range(targets.ndim - 1))
  frequencies = masked_sum(targets, pixels, axes)
  weights = 1.0 / (jnp.square(frequencies) + _GENERALIZED_EPS)
  return weights / jnp.sum(weights) * weights.shape[0]


@jax.jit(
  static_argnames=(
    "name",
    "kind",
    "axes",
    "apply_softmax",
    "squared",
    "ignore_background",
    "class_reduction",
    "reduction",
  )
)
def region_loss(
  predictions,
  targets,
  pixels,
  outputs,
  weights,
  class_weights,
  hyper,
  *,
  name,
  kind,
  axes,
  apply_softmax,
  squared,
  ignore_background,
  class_reduction,
  reduction,
):
  """Per-class overlap loss, class combination and :func:`jaxloss.reduce`.

  ``kind``: ``"tversky"`` (``1 − TI``; Dice and Jaccard are special cases),
  ``"focal"`` (``(1 − TI)^γ`` per class), ``"generalized"`` (Tversky with
  optax's batch class weights), ``"combo"`` (Dice mixed with a β-weighted
  binary cross-entropy). ``hyper`` holds the numeric hyper-parameters.
  """
  probs = probabilities(predictions, apply_softmax)
  if kind == "generalized":
    class_weights = generalized_class_weights(targets, pixels)
  sums = overlap_sums(probs, targets, pixels, axes, squared)
  per_class = 1 - tversky_index(
    *sums, hyper["smooth"], hyper["alpha"], hyper["beta"]
  )
  if kind == "focal":
    per_class = safe_power(per_class, hyper["gamma"])
  if kind == "combo":
    log_p, log_not_p = log_probability_pair(predictions, apply_softmax)
    beta = hyper["ce_beta"]
    bce = -(beta * targets * log_p + (1 - beta) * (1 - targets) * log_not_p)
    count = masked_sum(jnp.ones_like(predictions[..., :1]), pixels, axes)
    cross_entropy = numerics.safe_divide(masked_sum(bce, pixels, axes), count)
    ce_weight = hyper["ce_weight"]
    per_class = ce_weight * cross_entropy + (1 - ce_weight) * per_class
  values = combine_classes(
    per_class, class_weights, ignore_background, class_reduction
  )
  mask = output_mask(values, pixels, outputs, axes, class_reduction)
  return reduction_lib.reduce(
    values, reduction, weights=weights, where=mask, name=name
  )


def hyper_parameters(like: jax.Array, **values) -> dict:
  """Numeric hyper-parameters in ``like``'s dtype (Python numbers kept)."""
  return {k: numerics.like(v, like) for k, v in values.items()}
