"""Per-class region sums and their combination into one value per image,
shared by the segmentation losses (private to the family)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss.segmentation._inputs import Inputs


def probabilities(predictions: jax.Array, apply_softmax: bool) -> jax.Array:
  """Sigmoid for one channel, softmax over the last axis otherwise."""
  if not apply_softmax:
    return predictions
  if predictions.shape[-1] == 1:
    return jax.nn.sigmoid(predictions)
  return jax.nn.softmax(predictions, axis=-1)


def masked_sum(
  x: jax.Array, pixels: jax.Array | None, axes: tuple[int, ...]
) -> jax.Array:
  """Sum over ``axes`` of ``[..., classes]`` values, masked pixels left out."""
  if pixels is not None:
    x = jnp.where(pixels[..., None], x, jnp.zeros((), x.dtype))
  return jnp.sum(x, axis=axes)


def tversky_loss_per_class(
  probs: jax.Array,
  x: Inputs,
  smooth: ArrayLike,
  alpha: ArrayLike,
  beta: ArrayLike,
  squared: bool,
) -> jax.Array:
  r"""``1 − TI`` per image and class, ``TI = (I + s) / (I + α (P − I)
  + β (T − I) + s)`` with ``I = Σ p t``, ``P = Σ p`` (``Σ p²`` if squared),
  ``T = Σ t`` (``Σ t²``); the loss is 0 where the denominator is 0 (an empty
  class predicted empty, ``smooth = 0``)."""
  targets = x.targets
  intersection = masked_sum(probs * targets, x.pixels, x.axes)
  if squared:
    probs, targets = jnp.square(probs), jnp.square(targets)
  pred_sum = masked_sum(probs, x.pixels, x.axes)
  target_sum = masked_sum(targets, x.pixels, x.axes)
  numerator = intersection + smooth
  denominator = (
    intersection
    + alpha * (pred_sum - intersection)
    + beta * (target_sum - intersection)
    + smooth
  )
  zero = denominator == 0
  return 1 - jnp.where(zero, 1, numerator / jnp.where(zero, 1, denominator))


def per_image(
  per_class: jax.Array,
  x: Inputs,
  class_weights: jax.Array | None,
  ignore_background: bool,
  class_reduction: str,
) -> tuple[jax.Array, jax.Array | None]:
  """Class weights, then background dropped, then the class reduction; and
  the ``where`` for :func:`jaxloss.reduce`: the images with a pixel left, and
  the user's (image, class) mask."""
  if class_weights is not None:
    shape = (1,) * (per_class.ndim - 1) + class_weights.shape
    per_class = per_class * class_weights.reshape(shape)
  if ignore_background and per_class.shape[-1] > 1:
    per_class = per_class[..., 1:]
  if class_reduction == "mean":
    values = jnp.mean(per_class, axis=-1)
  elif class_reduction == "sum":
    values = jnp.sum(per_class, axis=-1)
  else:
    values = per_class
  mask = None
  if x.pixels is not None:
    mask = jnp.any(x.pixels, axis=x.axes)
    if class_reduction == "none":
      mask = mask[..., None]
  if x.outputs is not None:
    outputs = jnp.broadcast_to(x.outputs, values.shape)
    mask = (
      outputs
      if mask is None
      else jnp.logical_and(jnp.broadcast_to(mask, values.shape), outputs)
    )
  return values, mask
