"""Classification losses: cross-entropies, focal losses, margins, sparsemax.

Every loss returns per-example values and reduces through
:func:`jaxloss.reduce` (``where``, ``weights``, ``reduction``). Names shared
with ``optax.losses`` keep optax's positional signature, defaults and values.
"""

from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp

from jaxloss._core import checks, numerics
from jaxloss._core import reduction as reduction_lib
from jaxloss._core import value_checks
from jaxloss._classification_margin import *  # noqa: F401,F403
from jaxloss import _classification_margin

_LOG_CLAMP = -100.0  # torch.nn.functional.binary_cross_entropy's log clamp.


def masked_log_softmax(logits: jax.Array, axis: int,
                       element_mask: Optional[jax.Array]) -> jax.Array:
  """``log_softmax`` over the unmasked elements of ``axis``; masked entries 0.

  A fully masked row gives zeros with a finite gradient (``jax.nn.log_softmax``
  with ``where`` gives NaN there).
  """
  if element_mask is None:
    return jax.nn.log_softmax(logits, axis=axis)
  filled = jnp.where(element_mask, logits, jnp.finfo(logits.dtype).min)
  lse = jax.nn.logsumexp(filled, axis=axis, keepdims=True)
  return jnp.where(element_mask, filled - lse, 0)


@value_checks.value_rules(labels=value_checks.unit_interval)
def sigmoid_binary_cross_entropy(logits, labels, *, pos_weight=None,
                                 label_smoothing=0.0, where=None, weights=None,
                                 reduction="none"):
  r"""Binary cross-entropy on logits, elementwise.

  .. math::
    \ell = -\big(w_+\, y \log \sigma(x) + (1 - y) \log \sigma(-x)\big),
    \qquad y \leftarrow (1 - \varepsilon)\, y + \varepsilon / 2

  Args:
    logits: ``[...]`` floating logits.
    labels: ``[...]`` targets in [0, 1] (float, int or bool), same shape.
    pos_weight: optional weight ``w_+`` of the positive term, broadcastable to
      ``logits`` (per class in a multi-label problem).
    label_smoothing: ``ε`` in [0, 1]: targets move towards 1/2.
    where, weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``[...]`` elementwise loss, or a scalar for ``"sum"``/``"mean"``.

  Matches ``optax.losses.sigmoid_binary_cross_entropy`` and, with
  ``pos_weight``, ``torch.nn.functional.binary_cross_entropy_with_logits``.

  >>> import jax.numpy as jnp, jaxloss
  >>> jaxloss.sigmoid_binary_cross_entropy(jnp.array([0.0, 2.0]),
  ...                                      jnp.array([1.0, 0.0]))
  Array([0.6931472, 2.126928 ], dtype=float32)
  """
  name = "sigmoid_binary_cross_entropy"
  logits = checks.as_float(name, "logits", logits)
  labels = checks.as_targets(name, "labels", labels, logits)
  checks.same_shape(name, logits=logits, labels=labels)
  checks.in_unit_interval(name, "label_smoothing", label_smoothing)
  labels = labels * (1 - label_smoothing) + 0.5 * label_smoothing
  log_p, log_not_p = numerics.log_sigmoid_pair(logits)
  positive = labels * log_p
  if pos_weight is not None:
    positive = positive * checks.broadcast_weights(name, "pos_weight",
                                                   pos_weight, logits)
  values = -positive - (1 - labels) * log_not_p
  return reduction_lib.reduce(values, reduction, weights=weights, where=where,
                              name=name)


@value_checks.value_rules(probabilities=value_checks.unit_interval,
                          labels=value_checks.unit_interval)
def binary_cross_entropy(probabilities, labels, *, where=None, weights=None,
                         reduction="none"):
  r"""Binary cross-entropy on probabilities, with torch's log clamp at −100.

  .. math::
    \ell = -\big(y \max(\log p, -100) + (1 - y) \max(\log(1 - p), -100)\big)

  Probabilities of exactly 0 and 1 give finite values; in the clamped region
  the loss is flat, so its gradient there is 0.

  Args:
    probabilities: ``[...]`` predicted probabilities in [0, 1].
    labels: ``[...]`` targets in [0, 1], same shape.
    where, weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``[...]`` elementwise loss, or a scalar for ``"sum"``/``"mean"``.

  Matches ``torch.nn.functional.binary_cross_entropy``.

  >>> import jax.numpy as jnp, jaxloss
  >>> jaxloss.binary_cross_entropy(jnp.array([0.5, 0.0]), jnp.array([1.0, 1.0]))
  Array([  0.6931472, 100.       ], dtype=float32)
  """
  name = "binary_cross_entropy"
  probabilities = checks.as_float(name, "probabilities", probabilities)
  labels = checks.as_targets(name, "labels", labels, probabilities)
  checks.same_shape(name, probabilities=probabilities, labels=labels)
  values = -(labels * _clamped_log(probabilities)
             + (1 - labels) * _clamped_log(1 - probabilities))
  return reduction_lib.reduce(values, reduction, weights=weights, where=where,
                              name=name)


def _clamped_log(p: jax.Array) -> jax.Array:
  """``max(log p, -100)``; below the smallest normal number the value is
  clamped without a gradient (``1/p`` would overflow there)."""
  normal = p >= jnp.finfo(p.dtype).tiny
  log_normal = jnp.log(jnp.where(normal, p, 1))
  log_tiny = jax.lax.stop_gradient(jnp.log(jnp.where(normal, 1, p)))
  return jnp.maximum(jnp.where(normal, log_normal, log_tiny), _LOG_CLAMP)


def softmax_cross_entropy(logits, labels, axis=-1, where=None, *,
                          label_smoothing=0.0, class_weights=None,
                          weights=None, reduction="none"):
  r"""Cross-entropy between soft (or one-hot) labels and ``softmax(logits)``.

  .. math::
    \ell = -\sum_c w_c\, y_c \log \operatorname{softmax}(x)_c, \qquad
    y \leftarrow (1 - \varepsilon)\, y + \varepsilon / C

  Args:
    logits: ``[..., num_classes]`` floating logits.
    labels: ``[..., num_classes]`` target distributions, same shape.
    axis: the class axis (an int).
    where: boolean mask, of the logits' shape (drops classes: they leave the
      softmax and the sum, as in optax) or of the per-example shape (drops
      examples).
    label_smoothing: ``ε`` in [0, 1], spread over the ``C`` unmasked classes.
    class_weights: optional ``[num_classes]`` weights ``w_c`` inside the sum,
      as torch does for probability targets (so ``"mean"`` divides by the
      number of examples, not by a sum of weights).
    weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``[...]`` per-example loss (the class axis removed), or a scalar.

  Matches ``optax.losses.softmax_cross_entropy`` and
  ``torch.nn.functional.cross_entropy`` with probability targets.

  >>> import jax.numpy as jnp, jaxloss
  >>> jaxloss.softmax_cross_entropy(jnp.array([[0.0, 0.0]]),
  ...                               jnp.array([[1.0, 0.0]]))
  Array([0.6931472], dtype=float32)
  """
  name = "softmax_cross_entropy"
  logits = checks.as_float(name, "logits", logits)
  labels = checks.as_targets(name, "labels", labels, logits)
  checks.same_shape(name, logits=logits, labels=labels)
  checks.in_unit_interval(name, "label_smoothing", label_smoothing)
  axis = checks.canonical_axis(name, axis, logits.ndim)
  elements, examples = reduction_lib.split_where(name, where, logits.shape, axis)
  log_probs = masked_log_softmax(logits, axis, elements)
  if elements is None:
    num_classes = logits.shape[axis]
  else:
    num_classes = jnp.sum(elements, axis=axis, keepdims=True, dtype=logits.dtype)
    num_classes = jnp.maximum(num_classes, 1)
  labels = (1 - label_smoothing) * labels + label_smoothing / num_classes
  if elements is not None:
    labels = jnp.where(elements, labels, 0)
  if class_weights is not None:
    labels = labels * _class_weights_along(name, class_weights, logits, axis)
  values = -jnp.sum(labels * log_probs, axis=axis)
  return reduction_lib.reduce(values, reduction, weights=weights,
                              where=examples, name=name)


@value_checks.value_rules(labels=value_checks.class_index("logits"))
def softmax_cross_entropy_with_integer_labels(
    logits, labels, axis=-1, where=None, *, label_smoothing=0.0,
    class_weights=None, ignore_index=None, weights=None, reduction="none"):
  r"""Cross-entropy between integer class labels and ``softmax(logits)``.

  .. math::
    \ell = w_y \Big((1 - \varepsilon)\,\big(-\log p_y\big)
           + \frac{\varepsilon}{C} \sum_c -\log p_c\Big),
    \qquad p = \operatorname{softmax}(x)

  Args:
    logits: ``[..., num_classes]`` floating logits.
    labels: ``[...]`` integer class indices (the logits' shape without
      ``axis``).
    axis: the class axis (an int).
    where: boolean mask of the logits' shape (drops classes) or of the labels'
      shape (drops examples).
    label_smoothing: ``ε`` in [0, 1], spread over all ``C`` classes (torch's
      convention).
    class_weights: optional ``[num_classes]`` weights; they become per-example
      weights ``w_y``, so ``"mean"`` is torch's weighted mean
      ``Σ w_y ℓ / Σ w_y``. With ``label_smoothing`` as well, the whole
      smoothed loss is weighted by ``w_y`` (torch weights each smoothing term
      by its own class).
    ignore_index: optional label value that takes no part (torch's
      ``ignore_index``): sugar for ``where=labels != ignore_index``.
    weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``labels``' shape, or a scalar for ``"sum"``/``"mean"``.

  Matches ``optax.losses.softmax_cross_entropy_with_integer_labels`` and
  ``torch.nn.functional.cross_entropy`` with each of ``label_smoothing``,
  ``weight`` and ``ignore_index``.

  >>> import jax.numpy as jnp, jaxloss
  >>> logits = jnp.array([[2.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
  >>> jaxloss.softmax_cross_entropy_with_integer_labels(logits, jnp.array([0, 2]))
  Array([0.2395447, 1.0986123], dtype=float32)
  """
  name = "softmax_cross_entropy_with_integer_labels"
  logits = checks.as_float(name, "logits", logits)
  labels = checks.as_labels(name, "labels", labels)
  axis = checks.canonical_axis(name, axis, logits.ndim)
  checks.labels_for(name, labels, logits, axis)
  checks.in_unit_interval(name, "label_smoothing", label_smoothing)
  elements, examples = reduction_lib.split_where(name, where, logits.shape, axis)
  if ignore_index is not None:
    keep = labels != ignore_index
    examples = keep if examples is None else examples & keep
    labels = jnp.where(keep, labels, 0)
  log_probs = masked_log_softmax(logits, axis, elements)
  values = -jnp.take_along_axis(
      log_probs, jnp.expand_dims(labels, axis), axis=axis).squeeze(axis)
  if not (isinstance(label_smoothing, (int, float)) and label_smoothing == 0):
    num_classes = logits.shape[axis]
    uniform = -jnp.sum(log_probs, axis=axis) / num_classes
    values = (1 - label_smoothing) * values + label_smoothing * uniform
  weights = _combine_weights(name, labels, class_weights, weights, logits)
  return reduction_lib.reduce(values, reduction, weights=weights,
                              where=examples, name=name)


def _class_weights_along(name, class_weights, logits, axis):
  """``[num_classes]`` weights shaped to broadcast along ``axis`` of logits."""
  class_weights = checks.as_float(name, "class_weights", class_weights)
  checks.shape(name, "class_weights", class_weights, (logits.shape[axis],),
               "one weight per class")
  shape = [1] * logits.ndim
  shape[axis] = logits.shape[axis]
  return class_weights.astype(logits.dtype).reshape(shape)


def _combine_weights(name, labels, class_weights, weights, logits):
  """Per-example weights ``class_weights[labels] * weights`` (or ``None``)."""
  if class_weights is None:
    return weights
  class_weights = checks.as_float(name, "class_weights", class_weights)
  checks.rank(name, "class_weights", class_weights, 1)
  per_example = class_weights.astype(logits.dtype)[labels]
  if weights is None:
    return per_example
  return per_example * checks.broadcast_weights(name, "weights", weights,
                                                per_example)


__all__ = _classification_margin.__all__ + [
    "binary_cross_entropy",
    "sigmoid_binary_cross_entropy",
    "softmax_cross_entropy",
    "softmax_cross_entropy_with_integer_labels",
]
