"""The library's one rule for integer class labels.

A label outside ``[0, num_classes)`` that is not the loss's ``ignore_index``
and not masked out by ``where`` gives **NaN** for its example: loud, never
another class's value. (``jnp.take_along_axis`` would wrap ``-1`` round to the
last class; an equality test against ``arange(num_classes)`` would silently
pick nothing.) Ignored or masked examples are dropped by
:func:`jaxloss.reduce` whatever their label, because ``reduce`` selects with
``where`` before it sums, so their NaN never reaches the result or the
gradient. :func:`jaxloss.checked` reports such labels through the
``value_checks.class_index`` rule.

Usage in a loss::

  picked = labels_lib.pick(logits, labels)        # safe gather, any label
  values = labels_lib.nan_unless_valid(values, labels, num_classes)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def valid(labels: jax.Array, num_classes: int) -> jax.Array:
  """``True`` where ``0 <= label < num_classes``."""
  return (labels >= 0) & (labels < num_classes)


def clipped(labels: jax.Array, num_classes: int) -> jax.Array:
  """Labels clipped into ``[0, num_classes)``: a safe index for a gather
  (the result at an invalid label is then replaced by
  :func:`nan_unless_valid`)."""
  return jnp.clip(labels, 0, max(num_classes - 1, 0))


def pick(x: jax.Array, labels: jax.Array, axis: int = -1) -> jax.Array:
  """``x`` at each label along ``axis`` (``labels`` has ``x``'s shape without
  ``axis``), with invalid labels clipped: combine with
  :func:`nan_unless_valid`."""
  axis = axis % x.ndim
  index = jnp.expand_dims(clipped(labels, x.shape[axis]), axis)
  return jnp.squeeze(jnp.take_along_axis(x, index, axis=axis), axis)


def nan_unless_valid(
  values: jax.Array, labels: jax.Array, num_classes: int
) -> jax.Array:
  """``values`` with NaN wherever a label is out of range.

  ``labels`` broadcasts against ``values`` from the left (per-example labels
  against per-example values, or ``[batch, time]`` labels reduced to
  ``[batch]`` values by the caller first). The gradient at an invalid label
  is 0, so a masked-out invalid example leaves every gradient finite."""
  ok = valid(labels, num_classes)
  ok = ok.reshape(ok.shape + (1,) * (values.ndim - ok.ndim))
  return jnp.where(ok, values, jnp.asarray(jnp.nan, values.dtype))
