"""Input handling shared by the classification losses (private).

Checks and reshaping only: every helper takes the arrays a loss was given and
returns them checked, with the class axis last. The checks name the loss that
is running (:mod:`jaxloss._core.loss`).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss._core import checks, numerics, value_checks
from jaxloss._core import labels as labels_lib
from jaxloss._core.reduction import split_where

Axis = int | tuple[int, ...] | None

# Value rule: integer labels index the last axis of the argument `scores`.
SCORES_CLASS_INDEX = value_checks.class_index("scores", axis_arg=None)


def classes_last(
  axes: tuple[int, ...], where: ArrayLike | None, *arrays: jax.Array
) -> tuple[ArrayLike | None, list[jax.Array]]:
  """Moves the class axes of ``arrays`` (logits, and soft labels) to the
  end, flattened into one; an element mask (``where`` of the arrays' rank)
  moves with them. Returns ``(where, arrays)``."""
  ndim = arrays[0].ndim
  if axes == (ndim - 1,):
    return where, list(arrays)
  batch = tuple(a for a in range(ndim) if a not in axes)

  def move(x: jax.Array) -> jax.Array:
    x = jnp.transpose(x, batch + axes)
    # The class size spelled out: ``-1`` cannot be inferred for 0 examples.
    classes = math.prod(x.shape[len(batch) :])
    return x.reshape(x.shape[: len(batch)] + (classes,))

  if where is not None and jnp.ndim(where) == ndim:
    where = move(checks.broadcast_mask("where", where, arrays[0].shape))
  return where, [move(x) for x in arrays]


def scores_and_targets(
  scores: ArrayLike,
  targets: ArrayLike,
  scores_arg: str = "logits",
  targets_arg: str = "labels",
) -> tuple[jax.Array, jax.Array]:
  """Float scores and same-shaped numeric targets (float, int or bool) in the
  scores' dtype."""
  scores = checks.as_float(scores_arg, scores)
  targets = checks.as_targets(targets_arg, targets, scores)
  checks.same_shape(**{scores_arg: scores, targets_arg: targets})
  return scores, targets


def class_count(elements: jax.Array | None, like: jax.Array) -> int | jax.Array:
  """Unmasked classes per example along the last axis (at least 1, so a
  fully masked row stays finite), in ``like``'s dtype."""
  if elements is None:
    return like.shape[-1]
  return jnp.maximum(jnp.sum(elements, axis=-1, dtype=like.dtype), 1)


def soft_label_inputs(
  logits: ArrayLike,
  labels: ArrayLike,
  axis: Axis,
  where: ArrayLike | None,
  label_smoothing: ArrayLike = 0.0,
) -> tuple[jax.Array, jax.Array, jax.Array | None, jax.Array | None]:
  """Checks a soft-label loss's inputs; returns ``(logits, labels,
  element_mask, example_mask)`` with the classes last, the labels smoothed
  and 0 on masked classes."""
  logits, labels = scores_and_targets(logits, labels)
  checks.in_unit_interval("label_smoothing", label_smoothing)
  axes = checks.axes(axis, logits.ndim)
  where, (logits, labels) = classes_last(axes, where, logits, labels)
  elements, examples = split_where(where, logits.shape, -1)
  if not (checks.is_static_number(label_smoothing) and label_smoothing == 0):
    num_classes = class_count(elements, logits)
    if elements is not None:
      num_classes = jnp.expand_dims(num_classes, -1)
    smoothing = numerics.like(label_smoothing, logits)
    labels = jnp.asarray((1 - smoothing) * labels + smoothing / num_classes)
  if elements is not None:
    labels = jnp.where(elements, labels, 0)
  return logits, labels, elements, examples


def soft_cross_entropy(
  logits: jax.Array,
  labels: jax.Array,
  elements: jax.Array | None,
  epsilon: ArrayLike | None = None,
) -> jax.Array:
  """Per-example ``−Σ y log softmax(x)`` over the last axis (plus the Poly-1
  term ``ε Σ y (1 − p)`` with ``epsilon``), ``0 log 0 = 0`` also where a
  logit is -inf.

  Without a class mask, the fused :func:`jaxloss._core.numerics.
  soft_cross_entropy`; with one, the masked log-softmax (masked classes
  leave the softmax and the sum).
  """
  if elements is None:
    return numerics.soft_cross_entropy(logits, labels, epsilon)
  log_probs = numerics.masked_log_softmax(logits, -1, elements)
  log_probs = jnp.where((labels == 0) & jnp.isneginf(log_probs), 0, log_probs)
  terms = log_probs
  if epsilon is not None:
    terms = terms + numerics.like(epsilon, logits) * jnp.expm1(log_probs)
  return -jnp.sum(labels * terms, axis=-1)


def integer_label_inputs(
  logits: ArrayLike,
  labels: ArrayLike,
  axis: Axis,
  where: ArrayLike | None,
  ignore_index: int | None = None,
  shift: bool = True,
) -> tuple[jax.Array, jax.Array, jax.Array | None, jax.Array | None]:
  """Checks an integer-label loss's inputs; returns ``(logits, labels,
  element_mask, example_mask)`` with the classes last, the logits shifted by
  their (unmasked) maximum (unless ``shift=False``) and the labels of dropped
  examples set to 0."""
  logits = checks.as_float("logits", logits)
  labels = checks.as_labels("labels", labels)
  axes = checks.axes(axis, logits.ndim)
  checks.labels_for(labels, logits, axes)
  where, (logits,) = classes_last(axes, where, logits)
  elements, examples = split_where(where, logits.shape, -1)
  labels, examples = drop_ignored(labels, ignore_index, examples)
  if not shift:
    return logits, labels, elements, examples
  # Shift by the (unmasked) maximum: lse − x_y then loses no precision.
  top = numerics.masked_max(logits, elements)[..., None]
  logits = logits - jax.lax.stop_gradient(top)
  return logits, labels, elements, examples


def multiclass(
  scores: ArrayLike, labels: ArrayLike, where: ArrayLike | None
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array | None, jax.Array | None]:
  """Checks ``[..., C]`` scores and ``[...]`` integer labels; reads ``where``.

  Returns ``(scores, labels, one_hot, elements, examples)``, with the masks of
  :func:`jaxloss._core.reduction.split_where` over the class (last) axis.
  """
  scores = checks.as_float("scores", scores)
  labels = checks.as_labels("labels", labels)
  checks.min_rank("scores", scores, 1, "a class axis")
  checks.labels_for(labels, scores, scores.ndim - 1, logits_arg="scores")
  one_hot = jax.nn.one_hot(labels, scores.shape[-1], dtype=scores.dtype)
  elements, examples = split_where(where, scores.shape, -1)
  return scores, labels, one_hot, elements, examples


def drop_ignored(
  labels: jax.Array, ignore_index: int | None, examples: jax.Array | None
) -> tuple[jax.Array, jax.Array | None]:
  """Adds ``labels != ignore_index`` to the example mask; the labels of
  dropped examples become 0 (a valid index)."""
  if ignore_index is not None:
    keep = labels != ignore_index
    examples = keep if examples is None else examples & keep
  if examples is not None:
    labels = jnp.where(examples, labels, 0)
  return labels, examples


def class_weight_vector(
  class_weights: ArrayLike, num_classes: int, dtype: jnp.dtype
) -> jax.Array:
  """``[num_classes]`` float class weights in ``dtype``."""
  class_weights = checks.as_float("class_weights", class_weights)
  checks.shape(
    "class_weights", class_weights, (num_classes,), "one weight per class"
  )
  return class_weights.astype(dtype)


def label_class_weights(
  class_weights: ArrayLike, labels: jax.Array, like: jax.Array, axis: int = -1
) -> jax.Array:
  """``class_weights[labels]`` (``[num_classes]`` weights, classes of
  ``like`` along ``axis``), at clipped labels: an out-of-range label's value
  is NaN anyway (:func:`jaxloss._core.labels.nan_unless_valid`)."""
  num_classes = like.shape[axis]
  vector = class_weight_vector(class_weights, num_classes, like.dtype)
  return vector[labels_lib.clipped(labels, num_classes)]


def combine_weights(
  labels: jax.Array,
  class_weights: ArrayLike | None,
  weights: ArrayLike | None,
  like: jax.Array,
  axis: int = -1,
) -> ArrayLike | None:
  """Per-example weights ``class_weights[labels] * weights`` (or ``None``);
  ``like`` holds the classes along ``axis``. An out-of-range label takes a
  clipped index's weight (its value is NaN: :mod:`jaxloss._core.labels`)."""
  if class_weights is None:
    return weights
  per_example = label_class_weights(class_weights, labels, like, axis)
  if weights is None:
    return per_example
  return per_example * checks.broadcast_weights("weights", weights, per_example)
