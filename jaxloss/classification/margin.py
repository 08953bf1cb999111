"""Margin and perceptron classification losses: binary (hinge, squared
hinge, perceptron, soft margin), multiclass (Crammer-Singer hinge,
perceptron) and torch's multi-class and multi-label margins.

Names shared with ``optax.losses`` keep optax's positional signature,
defaults and values; the jaxloss extras are keyword-only.
"""

from __future__ import annotations

from typing import Literal

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss._core import checks, numerics, value_checks
from jaxloss._core import labels as labels_lib
from jaxloss._core.loss import loss
from jaxloss._core.reduction import Reduction, reduce, split_where
from jaxloss.classification import _inputs


def _relu(x: jax.Array) -> jax.Array:
  """``max(x, 0)`` with ``jax.nn.relu``'s values, NaN and gradient (0 at 0),
  as one select: ``jax.nn.relu``'s custom JVP makes XLA:CPU materialise a
  broadcast zero and the hinge argument (about 1.35x the step time of
  ``optax.losses.hinge_loss``; benchmarks/optax_dropin.py)."""
  return jnp.where(x <= 0, 0, x)


# --------------------------------------------------------------------------- #
# binary margins


@loss(targets=value_checks.signs)
def hinge_loss(
  predictor_outputs: ArrayLike,
  targets: ArrayLike,
  *,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""Hinge loss for binary classification, elementwise.

  .. math:: \ell = \max(0, 1 - y\, s), \qquad y \in \{-1, +1\}

  Args:
    predictor_outputs: ``[...]`` floating scores ``s``.
    targets: ``[...]`` targets in {-1, +1}, same shape.
    where, weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``[...]`` elementwise loss, or a scalar for ``"sum"``/``"mean"``.

  Matches ``optax.losses.hinge_loss`` (which does not check shapes).

  >>> import jax.numpy as jnp, jaxloss
  >>> jaxloss.hinge_loss(jnp.array([2.0, 0.5, -1.0]), jnp.array([1, 1, 1]))
  Array([0. , 0.5, 2. ], dtype=float32)

  References:
    Cortes and Vapnik, `Support-vector networks
    <https://doi.org/10.1007/BF00994018>`_, 1995.
  """
  scores, targets = _inputs.scores_and_targets(
    predictor_outputs, targets, "predictor_outputs", "targets"
  )
  values = _relu(1 - scores * targets)
  return reduce(values, reduction, weights=weights, where=where)


@loss(targets=value_checks.signs)
def squared_hinge_loss(
  predictor_outputs: ArrayLike,
  targets: ArrayLike,
  *,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""Squared hinge (L2-SVM) loss for binary classification, elementwise.

  .. math:: \ell = \max(0, 1 - y\, s)^2, \qquad y \in \{-1, +1\}

  Args:
    predictor_outputs: ``[...]`` floating scores ``s``.
    targets: ``[...]`` targets in {-1, +1}, same shape.
    where, weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``[...]`` elementwise loss, or a scalar for ``"sum"``/``"mean"``.

  No optax or torch counterpart; the loss of
  ``sklearn.svm.LinearSVC(loss="squared_hinge")``, tested against the formula.

  >>> import jax.numpy as jnp, jaxloss
  >>> jaxloss.squared_hinge_loss(jnp.array([2.0, 0.5, -1.0]),
  ...                            jnp.array([1, 1, 1]))
  Array([0.  , 0.25, 4.  ], dtype=float32)

  References:
    Chang, Hsieh and Lin, `Coordinate descent method for large-scale L2-loss
    linear support vector machines
    <https://www.jmlr.org/papers/v9/chang08a.html>`_, 2008.
  """
  scores, targets = _inputs.scores_and_targets(
    predictor_outputs, targets, "predictor_outputs", "targets"
  )
  values = jnp.square(_relu(1 - scores * targets))
  return reduce(values, reduction, weights=weights, where=where)


@loss(targets=value_checks.signs)
def perceptron_loss(
  predictor_outputs: ArrayLike,
  targets: ArrayLike,
  *,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""Binary perceptron loss, elementwise.

  .. math:: \ell = \max(0, -y\, s), \qquad y \in \{-1, +1\}

  Args:
    predictor_outputs: ``[...]`` floating scores ``s``.
    targets: ``[...]`` targets in {-1, +1}, same shape.
    where, weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``[...]`` elementwise loss, or a scalar for ``"sum"``/``"mean"``.

  Matches ``optax.losses.perceptron_loss``.

  >>> import jax.numpy as jnp, jaxloss
  >>> jaxloss.perceptron_loss(jnp.array([2.0, -0.5]), jnp.array([1, 1]))
  Array([0. , 0.5], dtype=float32)

  References:
    Rosenblatt, `The perceptron: a probabilistic model for information storage
    and organization in the brain <https://doi.org/10.1037/h0042519>`_, 1958.
  """
  scores, targets = _inputs.scores_and_targets(
    predictor_outputs, targets, "predictor_outputs", "targets"
  )
  values = _relu(-scores * targets)
  return reduce(values, reduction, weights=weights, where=where)


@loss(targets=value_checks.signs)
def soft_margin_loss(
  scores: ArrayLike,
  targets: ArrayLike,
  *,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""Soft-margin (logistic) loss for targets in {-1, +1}, elementwise.

  .. math:: \ell = \log(1 + e^{-y x}) = \operatorname{softplus}(-y x)

  Args:
    scores: ``[...]`` floating scores ``x``.
    targets: ``[...]`` targets in {-1, +1}, same shape.
    where, weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``[...]`` elementwise loss, or a scalar for ``"sum"``/``"mean"``.

  Matches ``torch.nn.functional.soft_margin_loss`` (its ``"mean"`` averages
  every element, as here).

  >>> import jax.numpy as jnp, jaxloss
  >>> jaxloss.soft_margin_loss(jnp.array([0.0, 2.0]), jnp.array([1, -1]))
  Array([0.6931472, 2.126928 ], dtype=float32)

  References:
    PyTorch, `SoftMarginLoss
    <https://pytorch.org/docs/stable/generated/torch.nn.SoftMarginLoss.html>`_.
  """
  scores, targets = _inputs.scores_and_targets(
    scores, targets, "scores", "targets"
  )
  values = jax.nn.softplus(-targets * scores)
  return reduce(values, reduction, weights=weights, where=where)


# --------------------------------------------------------------------------- #
# multiclass margins


@loss(labels=_inputs.SCORES_CLASS_INDEX)
def multiclass_hinge_loss(
  scores: ArrayLike,
  labels: ArrayLike,
  *,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""Multiclass (Crammer-Singer) hinge loss.

  .. math:: \ell = \max_c \big(s_c + 1 - [c = y]\big) - s_y

  A label outside ``[0, C)`` that is not masked out by ``where`` gives
  **NaN** for its example, on purpose (:mod:`jaxloss._core.labels`): optax's
  function of the same name gives a finite value there, silently.

  Args:
    scores: ``[..., num_classes]`` floating scores.
    labels: ``[...]`` integer class indices.
    where: boolean mask of the scores' shape (drops classes from the max; the
      label's class must stay) or of the labels' shape (drops examples).
    weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``labels``' shape, or a scalar for ``"sum"``/``"mean"``.

  Matches ``optax.losses.multiclass_hinge_loss``.

  >>> import jax.numpy as jnp, jaxloss
  >>> jaxloss.multiclass_hinge_loss(jnp.array([[2.0, 1.5, 0.0]]),
  ...                               jnp.array([0]))
  Array([0.5], dtype=float32)

  References:
    Crammer and Singer, `On the algorithmic implementation of multiclass
    kernel-based vector machines
    <https://www.jmlr.org/papers/v2/crammer01a.html>`_, 2001.
  """
  scores, labels, one_hot, elements, examples = _inputs.multiclass(
    scores, labels, where
  )
  label_scores = jnp.sum(scores * one_hot, axis=-1)
  values = numerics.masked_max(scores + 1 - one_hot, elements) - label_scores
  values = labels_lib.nan_unless_valid(values, labels, scores.shape[-1])
  return reduce(values, reduction, weights=weights, where=examples)


@loss(labels=_inputs.SCORES_CLASS_INDEX)
def multiclass_perceptron_loss(
  scores: ArrayLike,
  labels: ArrayLike,
  *,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""Multiclass perceptron loss.

  .. math:: \ell = \max_c s_c - s_y

  A label outside ``[0, C)`` that is not masked out by ``where`` gives
  **NaN** for its example, on purpose (:mod:`jaxloss._core.labels`): optax's
  function of the same name gives a finite value there, silently.

  Args:
    scores: ``[..., num_classes]`` floating scores.
    labels: ``[...]`` integer class indices.
    where: boolean mask of the scores' shape (drops classes from the max; the
      label's class must stay) or of the labels' shape (drops examples).
    weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``labels``' shape, or a scalar for ``"sum"``/``"mean"``.

  Matches ``optax.losses.multiclass_perceptron_loss``.

  >>> import jax.numpy as jnp, jaxloss
  >>> jaxloss.multiclass_perceptron_loss(jnp.array([[2.0, 1.5, 0.0]]),
  ...                                    jnp.array([1]))
  Array([0.5], dtype=float32)

  References:
    Collins, `Discriminative training methods for hidden Markov models: theory
    and experiments with perceptron algorithms
    <https://aclanthology.org/W02-1001/>`_, 2002.
  """
  scores, labels, one_hot, elements, examples = _inputs.multiclass(
    scores, labels, where
  )
  values = numerics.masked_max(scores, elements) - jnp.sum(
    scores * one_hot, axis=-1
  )
  values = labels_lib.nan_unless_valid(values, labels, scores.shape[-1])
  return reduce(values, reduction, weights=weights, where=examples)


# --------------------------------------------------------------------------- #
# torch's multi-class and multi-label margins


@loss(labels=_inputs.SCORES_CLASS_INDEX)
def multi_margin_loss(
  scores: ArrayLike,
  labels: ArrayLike,
  *,
  p: Literal[1, 2] = 1,
  margin: ArrayLike = 1.0,
  class_weights: ArrayLike | None = None,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""Multi-class margin (Weston-Watkins) loss, as torch computes it.

  .. math::
    \ell = \frac{w_y}{C} \sum_{c \ne y} \max(0, m - s_y + s_c)^p

  A label outside ``[0, C)`` that is not masked out by ``where`` gives
  **NaN** for its example (torch raises; :mod:`jaxloss._core.labels`).

  Args:
    scores: ``[..., num_classes]`` floating scores.
    labels: ``[...]`` integer class indices.
    p: 1 or 2.
    margin: the margin ``m`` (>= 0).
    class_weights: optional ``[num_classes]`` weights; each example's value is
      multiplied by ``w_y`` (outside the power, as torch's kernel does; its
      documentation puts it inside), so ``"mean"`` divides by the number of
      examples, as torch does, not by a sum of weights.
    where: boolean mask of the scores' shape (drops classes: ``C`` counts the
      unmasked ones; the label's class must stay) or of the labels' shape
      (drops examples).
    weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``labels``' shape, or a scalar for ``"sum"``/``"mean"``.

  Matches ``torch.nn.functional.multi_margin_loss``, with the class axis last.

  >>> import jax.numpy as jnp, jaxloss
  >>> jaxloss.multi_margin_loss(jnp.array([[0.1, 0.2, 0.4, 0.8]]),
  ...                           jnp.array([3]))
  Array([0.325], dtype=float32)

  References:
    Weston and Watkins, Support vector machines for multi-class pattern
    recognition, ESANN 1999; PyTorch, `MultiMarginLoss
    <https://pytorch.org/docs/stable/generated/torch.nn.MultiMarginLoss.html>`_.
  """
  checks.option("p", p, (1, 2))
  checks.nonnegative("margin", margin)
  scores, labels, one_hot, elements, examples = _inputs.multiclass(
    scores, labels, where
  )
  margin = jnp.asarray(margin, scores.dtype)
  label_scores = jnp.sum(scores * one_hot, axis=-1, keepdims=True)
  terms = jax.nn.relu(margin - label_scores + scores)
  if p == 2:
    terms = jnp.square(terms)
  others = one_hot == 0 if elements is None else (one_hot == 0) & elements
  values = jnp.sum(jnp.where(others, terms, 0), axis=-1) / _inputs.class_count(
    elements, scores
  )
  if class_weights is not None:
    values = values * _inputs.label_class_weights(class_weights, labels, scores)
  values = labels_lib.nan_unless_valid(values, labels, scores.shape[-1])
  return reduce(values, reduction, weights=weights, where=examples)


def _multilabel_targets(args: dict, arg: str) -> tuple[jax.Array, str]:
  """Value rule of :func:`multilabel_margin_loss`: before the first negative
  entry, torch-format labels lie in ``[0, num_classes)`` (a boolean mask and
  the examples masked out by a per-example ``where`` always pass)."""
  labels = jnp.asarray(args[arg])
  num_classes = jnp.shape(args["scores"])[-1]
  message = (
    f"must hold class indices in [0, {num_classes}) before the first "
    "negative entry (torch's format), or be a boolean multi-hot mask"
  )
  if labels.dtype == jnp.bool_ or labels.ndim == 0:
    return jnp.asarray(True), message
  ok = ~_before_first_negative(labels) | (labels < num_classes)
  where = args.get("where")
  if where is not None and jnp.shape(where) == labels.shape[:-1]:
    ok = ok | ~jnp.asarray(where)[..., None]
  return jnp.all(ok), message


def _before_first_negative(labels: jax.Array) -> jax.Array:
  """``True`` at the entries of the last axis before its first negative."""
  return jnp.cumsum(labels < 0, axis=-1) == 0


@loss(labels=_multilabel_targets)
def multilabel_margin_loss(
  scores: ArrayLike,
  labels: ArrayLike,
  *,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""Multi-label margin loss, as torch computes it: every target class should
  score at least 1 above every non-target class.

  .. math::
    \ell = \frac1C \sum_{j \in J} \sum_{i \notin T} \max(0, 1 - s_j + s_i)

  ``T`` is the set of target classes, and ``J`` the list of targets: torch's
  format, class indices read up to the first negative entry (``-1``; the
  rest is ignored), where a repeated index counts as often as it appears;
  or a boolean multi-hot mask (``J = T``).

  torch's format is the one documented exception to the library's label
  rule (:mod:`jaxloss._core.labels`): ``-1`` ends the list instead of being
  an invalid label. An index ``>= C`` before it gives **NaN** for its
  example (torch raises).

  Args:
    scores: ``[..., num_classes]`` floating scores.
    labels: ``[..., num_classes]``: integer class indices in torch's format
      (a list ended by ``-1``), or a boolean multi-hot mask. An integer array
      is always read as torch's format: pass a multi-hot mask as booleans.
    where: boolean mask of the scores' shape (drops classes: they are neither
      targets nor non-targets, and ``C`` counts the unmasked ones) or of the
      per-example shape (drops examples).
    weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``[...]`` per-example loss (the class axis removed), or a scalar.

  Matches ``torch.nn.functional.multilabel_margin_loss``, with the class axis
  last.

  >>> import jax.numpy as jnp, jaxloss
  >>> jaxloss.multilabel_margin_loss(jnp.array([[0.1, 0.2, 0.4, 0.8]]),
  ...                                jnp.array([[3, 0, -1, 1]]))
  Array([0.84999...], dtype=float32)

  References:
    PyTorch, `MultiLabelMarginLoss
    <https://pytorch.org/docs/stable/generated/torch.nn.MultiLabelMarginLoss.html>`_.
  """
  scores = checks.as_float("scores", scores)
  checks.min_rank("scores", scores, 1, "a class axis")
  labels = jnp.asarray(labels)
  if labels.dtype != jnp.bool_:
    labels = checks.as_labels("labels", labels)
  checks.same_shape(scores=scores, labels=labels)
  num_classes = scores.shape[-1]
  elements, examples = split_where(where, scores.shape, -1)
  if labels.dtype == jnp.bool_:
    is_target = active = labels
    target_scores = scores
    checked = None
  else:
    active = _before_first_negative(labels)
    index = labels_lib.clipped(labels, num_classes)
    target_scores = jnp.take_along_axis(scores, index, axis=-1)
    listed = jax.nn.one_hot(index, num_classes, dtype=jnp.bool_)
    is_target = jnp.any(active[..., :, None] & listed, axis=-2)
    # The largest listed index: out of range exactly when one of them is.
    checked = jnp.max(jnp.where(active, labels, 0), axis=-1, initial=0)
    if elements is not None:
      active = active & jnp.take_along_axis(elements, index, axis=-1)
  others = ~is_target
  if elements is not None:
    others = others & elements
    if checked is None:
      active = active & elements
  terms = _relu(1 - target_scores[..., :, None] + scores[..., None, :])
  terms = jnp.where(active[..., :, None] & others[..., None, :], terms, 0)
  values = jnp.sum(terms, axis=(-2, -1)) / _inputs.class_count(elements, scores)
  if checked is not None:
    values = labels_lib.nan_unless_valid(values, checked, num_classes)
  return reduce(values, reduction, weights=weights, where=examples)


@loss(labels=value_checks.unit_interval)
def multilabel_soft_margin_loss(
  logits: ArrayLike,
  labels: ArrayLike,
  *,
  class_weights: ArrayLike | None = None,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""Multi-label one-versus-all logistic loss, averaged over classes.

  .. math::
    \ell = -\frac1C \sum_c w_c \big(y_c \log \sigma(x_c)
           + (1 - y_c) \log \sigma(-x_c)\big)

  Args:
    logits: ``[..., num_classes]`` floating logits.
    labels: ``[..., num_classes]`` targets in [0, 1] (float, int or bool).
    class_weights: optional ``[num_classes]`` weights ``w_c`` inside the sum
      (so ``"mean"`` divides by the number of examples, as torch does).
    where: boolean mask of the logits' shape (drops classes: ``C`` counts the
      unmasked ones) or of the per-example shape (drops examples).
    weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``[...]`` per-example loss (the class axis removed), or a scalar.

  Matches ``torch.nn.functional.multilabel_soft_margin_loss``, with the class
  axis last.

  >>> import jax.numpy as jnp, jaxloss
  >>> jaxloss.multilabel_soft_margin_loss(jnp.array([[0.0, 2.0]]),
  ...                                     jnp.array([[1, 0]]))
  Array([1.4100376], dtype=float32)

  References:
    PyTorch, `MultiLabelSoftMarginLoss
    <https://pytorch.org/docs/stable/generated/torch.nn.MultiLabelSoftMarginLoss.html>`_.
  """
  logits, labels = _inputs.scores_and_targets(logits, labels)
  checks.min_rank("logits", logits, 1, "a class axis")
  elements, examples = split_where(where, logits.shape, -1)
  terms = labels * jax.nn.softplus(-logits) + (1 - labels) * jax.nn.softplus(
    logits
  )
  if class_weights is not None:
    terms = terms * jnp.broadcast_to(
      _inputs.class_weight_vector(
        class_weights, logits.shape[-1], logits.dtype
      ),
      terms.shape,
    )
  if elements is not None:
    terms = jnp.where(elements, terms, 0)
  values = jnp.sum(terms, axis=-1) / _inputs.class_count(elements, logits)
  return reduce(values, reduction, weights=weights, where=examples)


__all__ = [
  "hinge_loss",
  "multi_margin_loss",
  "multiclass_hinge_loss",
  "multiclass_perceptron_loss",
  "multilabel_margin_loss",
  "multilabel_soft_margin_loss",
  "perceptron_loss",
  "soft_margin_loss",
  "squared_hinge_loss",
]
