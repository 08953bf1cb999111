"""Input handling shared by the classification losses (private)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxloss._core import checks, numerics
from jaxloss._core import reduction as reduction_lib


def class_axes(name, axis, ndim) -> tuple[int, ...]:
  """The class axes as non-negative ints: ``axis`` is an int, a tuple of ints
  or ``None`` (all axes), as optax allows."""
  if axis is None:
    return tuple(range(ndim))
  if isinstance(axis, tuple):
    axes = tuple(checks.canonical_axis(name, a, ndim) for a in axis)
    if not axes or len(set(axes)) != len(axes):
      raise ValueError(f"{name}: `axis` {axis!r} must name distinct axes.")
    return axes
  return (checks.canonical_axis(name, axis, ndim),)


def classes_last(name, axes, logits, labels=None, where=None):
  """Moves the class axes to the end, flattened into one; soft ``labels`` and
  an element mask (``where`` of the logits' rank) move with them."""
  ndim = logits.ndim
  if axes == (ndim - 1,):
    return logits, labels, where
  batch = tuple(a for a in range(ndim) if a not in axes)

  def move(x):
    x = jnp.transpose(x, batch + axes)
    return x.reshape(x.shape[: len(batch)] + (-1,))

  if where is not None and jnp.ndim(where) == ndim:
    where = move(checks.broadcast_mask(name, "where", where, logits.shape))
  return move(logits), None if labels is None else move(labels), where


def soft_label_inputs(name, logits, labels, axis, where, label_smoothing=0.0):
  """Checks a soft-label loss's inputs; returns ``(log_probs, labels,
  example_mask)`` with the classes last, labels smoothed and 0 on masked
  classes, and ``log_probs`` 0 where a label is 0 (``0 log 0 = 0``)."""
  logits = checks.as_float(name, "logits", logits)
  labels = checks.as_targets(name, "labels", labels, logits)
  checks.same_shape(name, logits=logits, labels=labels)
  checks.in_unit_interval(name, "label_smoothing", label_smoothing)
  axes = class_axes(name, axis, logits.ndim)
  logits, labels, where = classes_last(name, axes, logits, labels, where)
  elements, examples = reduction_lib.split_where(name, where, logits.shape, -1)
  log_probs = numerics.masked_log_softmax(logits, -1, elements)
  if elements is None:
    num_classes = logits.shape[-1]
  else:
    num_classes = jnp.maximum(
      jnp.sum(elements, axis=-1, keepdims=True, dtype=logits.dtype), 1
    )
  label_smoothing = numerics.like(label_smoothing, logits)
  labels = (1 - label_smoothing) * labels + label_smoothing / num_classes
  if elements is not None:
    labels = jnp.where(elements, labels, 0)
  log_probs = jnp.where((labels == 0) & jnp.isneginf(log_probs), 0, log_probs)
  return log_probs, labels, examples


def integer_label_inputs(name, logits, labels, axis, where, ignore_index=None):
  """Checks an integer-label loss's inputs; returns ``(logits, labels,
  element_mask, example_mask)`` with the classes last and the labels of
  dropped examples set to 0."""
  logits = checks.as_float(name, "logits", logits)
  labels = checks.as_labels(name, "labels", labels)
  axes = class_axes(name, axis, logits.ndim)
  labels_for(name, labels, logits, axes)
  logits, _, where = classes_last(name, axes, logits, where=where)
  elements, examples = reduction_lib.split_where(name, where, logits.shape, -1)
  labels, examples = drop_ignored(labels, ignore_index, examples)
  # Shift by the (unmasked) maximum: lse − x_y then loses no precision.
  if elements is None:
    top = jnp.max(logits, axis=-1, keepdims=True)
  else:
    top = jnp.max(
      jnp.where(elements, logits, jnp.finfo(logits.dtype).min),
      axis=-1,
      keepdims=True,
    )
    top = jnp.where(jnp.any(elements, axis=-1, keepdims=True), top, 0)
  logits = logits - jax.lax.stop_gradient(top)
  return logits, labels, elements, examples


def labels_for(name, labels, logits, axes, logits_arg="logits"):
  """Integer labels have the logits' shape without the class axes."""
  expected = tuple(s for a, s in enumerate(logits.shape) if a not in axes)
  if tuple(labels.shape) != expected:
    what = f"axis {axes[0]}" if len(axes) == 1 else f"axes {axes}"
    raise ValueError(
      f"{name}: argument `labels` must have shape {expected} (the shape of "
      f"`{logits_arg}` {tuple(logits.shape)} without {what}), got "
      f"{tuple(labels.shape)}."
    )


def drop_ignored(labels, ignore_index, examples):
  """Adds ``labels != ignore_index`` to the example mask; the labels of
  dropped examples become 0 (a valid index)."""
  if ignore_index is not None:
    keep = labels != ignore_index
    examples = keep if examples is None else examples & keep
  if examples is not None:
    labels = jnp.where(examples, labels, 0)
  return labels, examples


def logsumexp(logits, mask, empty):
  """``logsumexp`` over the last axis's unmasked entries; ``empty`` where none
  is unmasked (with a zero gradient there)."""
  if mask is None:
    return jax.nn.logsumexp(logits, axis=-1)
  filled = jnp.where(mask, logits, jnp.finfo(logits.dtype).min)
  return jnp.where(
    jnp.any(mask, axis=-1), jax.nn.logsumexp(filled, axis=-1), empty
  )


def pick(x, labels):
  """``x[..., labels]`` along the last axis."""
  return jnp.take_along_axis(x, labels[..., None], axis=-1)[..., 0]


def class_weights_last(name, class_weights, logits):
  """``[num_classes]`` weights shaped to broadcast along the last axis."""
  class_weights = checks.as_float(name, "class_weights", class_weights)
  checks.shape(
    name,
    "class_weights",
    class_weights,
    (logits.shape[-1],),
    "one weight per class",
  )
  return class_weights.astype(logits.dtype).reshape(
    (1,) * (logits.ndim - 1) + (-1,)
  )


def combine_weights(name, labels, class_weights, weights, logits, axis=-1):
  """Per-example weights ``class_weights[labels] * weights`` (or ``None``)."""
  if class_weights is None:
    return weights
  class_weights = checks.as_float(name, "class_weights", class_weights)
  checks.shape(
    name,
    "class_weights",
    class_weights,
    (logits.shape[axis],),
    "one weight per class",
  )
  per_example = class_weights.astype(logits.dtype)[labels]
  if weights is None:
    return per_example
  return per_example * checks.broadcast_weights(
    name, "weights", weights, per_example
  )
