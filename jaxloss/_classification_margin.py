"""Margin, perceptron and sparsemax classification losses.

Public through :mod:`jaxloss.classification` (kept in its own file so that each
file stays short). Names shared with ``optax.losses`` keep optax's positional
signature, defaults and values; the jaxloss extras are keyword-only.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from optax import projections

from jaxloss._core import checks, value_checks
from jaxloss._core import reduction as reduction_lib

# --------------------------------------------------------------------------- #
# value rules and shared maths


def _zeros_and_ones(args, arg):
  """Binary labels are 0 or 1."""
  x = jnp.asarray(args[arg])
  return jnp.all((x == 0) | (x == 1)), "must hold 0 or 1"


_CLASS_INDEX = value_checks.class_index("scores", axis_arg=None)


def _relu(x):
  """``max(x, 0)`` with ``jax.nn.relu``'s values, NaN and gradient (0 at 0),
  as one select: ``jax.nn.relu``'s custom JVP makes XLA:CPU materialise a
  broadcast zero and the hinge argument (about 1.35x the step time of
  ``optax.losses.hinge_loss``; benchmarks/optax_dropin.py)."""
  return jnp.where(x <= 0, 0, x)


def _scores_and_targets(
  name, scores, targets, scores_arg="predictor_outputs", targets_arg="targets"
):
  """Float scores and same-shaped numeric targets in the scores' dtype."""
  scores = checks.as_float(name, scores_arg, scores)
  targets = checks.as_targets(name, targets_arg, targets, scores)
  checks.same_shape(name, **{scores_arg: scores, targets_arg: targets})
  return scores, targets


def _class_axis(name, arg, x):
  """``x`` has a class (last) axis: a scalar is rejected."""
  if x.ndim == 0:
    raise ValueError(
      f"{name}: argument `{arg}` must have a class axis "
      f"(rank >= 1), got shape ()."
    )


def _multiclass(name, scores, labels, where):
  """Checks ``[..., C]`` scores and ``[...]`` integer labels; reads ``where``.

  Returns ``(scores, labels, one_hot, elements, examples)``, with the masks of
  ``reduction_lib.split_where`` over the class (last) axis.
  """
  scores = checks.as_float(name, "scores", scores)
  labels = checks.as_labels(name, "labels", labels)
  _class_axis(name, "scores", scores)
  checks.labels_for(name, labels, scores, scores.ndim - 1, logits_arg="scores")
  one_hot = jax.nn.one_hot(labels, scores.shape[-1], dtype=scores.dtype)
  elements, examples = reduction_lib.split_where(name, where, scores.shape, -1)
  return scores, labels, one_hot, elements, examples


def _masked_max(x: jax.Array, elements: jax.Array | None) -> jax.Array:
  """Max over the last axis of the unmasked entries; 0 for a row with none."""
  if elements is None:
    return jnp.max(x, axis=-1)
  filled = jnp.where(elements, x, jnp.finfo(x.dtype).min)
  return jnp.where(jnp.any(elements, axis=-1), jnp.max(filled, axis=-1), 0)


def _class_count(elements: jax.Array | None, like: jax.Array) -> jax.Array:
  """Unmasked classes per example (at least 1), in ``like``'s dtype."""
  if elements is None:
    return jnp.asarray(like.shape[-1], like.dtype)
  return jnp.maximum(jnp.sum(elements, axis=-1, dtype=like.dtype), 1)


def _per_class(name, arg, class_weights, scores):
  """``[num_classes]`` class weights in the scores' dtype."""
  class_weights = checks.as_float(name, arg, class_weights).astype(scores.dtype)
  checks.shape(
    name, arg, class_weights, (scores.shape[-1],), "one weight per class"
  )
  return class_weights


# --------------------------------------------------------------------------- #
# binary margins


@value_checks.value_rules(targets=value_checks.signs)
def hinge_loss(
  predictor_outputs, targets, *, where=None, weights=None, reduction="none"
):
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
  name = "hinge_loss"
  scores, targets = _scores_and_targets(name, predictor_outputs, targets)
  values = _relu(1 - scores * targets)
  return reduction_lib.reduce(
    values, reduction, weights=weights, where=where, name=name
  )


@value_checks.value_rules(targets=value_checks.signs)
def squared_hinge_loss(
  predictor_outputs, targets, *, where=None, weights=None, reduction="none"
):
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
  name = "squared_hinge_loss"
  scores, targets = _scores_and_targets(name, predictor_outputs, targets)
  values = jnp.square(_relu(1 - scores * targets))
  return reduction_lib.reduce(
    values, reduction, weights=weights, where=where, name=name
  )


@value_checks.value_rules(targets=value_checks.signs)
def perceptron_loss(
  predictor_outputs, targets, *, where=None, weights=None, reduction="none"
):
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
  name = "perceptron_loss"
  scores, targets = _scores_and_targets(name, predictor_outputs, targets)
  values = _relu(-scores * targets)
  return reduction_lib.reduce(
    values, reduction, weights=weights, where=where, name=name
  )


@value_checks.value_rules(targets=value_checks.signs)
def soft_margin_loss(
  scores, targets, *, where=None, weights=None, reduction="none"
):
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
  name = "soft_margin_loss"
  scores, targets = _scores_and_targets(
    name, scores, targets, scores_arg="scores"
  )
  values = jax.nn.softplus(-targets * scores)
  return reduction_lib.reduce(
    values, reduction, weights=weights, where=where, name=name
  )


@value_checks.value_rules(labels=_zeros_and_ones)
def sparsemax_loss(
  logits, labels, *, where=None, weights=None, reduction="none"
):
  r"""Binary sparsemax loss, elementwise.

  Zero if and only if ``jax.nn.sparse_sigmoid(logits) == labels``.

  .. math::
    \ell = \operatorname{sparseplus}(-x) \text{ if } y = 1, \quad
    \operatorname{sparseplus}(x) \text{ if } y = 0

  Args:
    logits: ``[...]`` floating scores ``x``.
    labels: ``[...]`` labels in {0, 1}, same shape.
    where, weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``[...]`` elementwise loss, or a scalar for ``"sum"``/``"mean"``.

  Matches ``optax.losses.sparsemax_loss``.

  >>> import jax.numpy as jnp, jaxloss
  >>> jaxloss.sparsemax_loss(jnp.array([2.0, 0.0, 0.5]), jnp.array([1, 1, 0]))
  Array([0.    , 0.25  , 0.5625], dtype=float32)

  References:
    Blondel, Martins and Niculae, `Learning with Fenchel-Young losses
    <https://arxiv.org/abs/1901.02324>`_, 2020 (section 4.4).
  """
  name = "sparsemax_loss"
  logits, labels = _scores_and_targets(
    name, logits, labels, scores_arg="logits", targets_arg="labels"
  )
  values = jax.nn.sparse_plus(jnp.where(labels != 0, -logits, logits))
  return reduction_lib.reduce(
    values, reduction, weights=weights, where=where, name=name
  )


# --------------------------------------------------------------------------- #
# multiclass margins


@value_checks.value_rules(labels=_CLASS_INDEX)
def multiclass_hinge_loss(
  scores, labels, *, where=None, weights=None, reduction="none"
):
  r"""Multiclass (Crammer-Singer) hinge loss.

  .. math:: \ell = \max_c \big(s_c + 1 - [c = y]\big) - s_y

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
  name = "multiclass_hinge_loss"
  scores, _, one_hot, elements, examples = _multiclass(
    name, scores, labels, where
  )
  label_scores = jnp.sum(scores * one_hot, axis=-1)
  values = _masked_max(scores + 1 - one_hot, elements) - label_scores
  return reduction_lib.reduce(
    values, reduction, weights=weights, where=examples, name=name
  )


@value_checks.value_rules(labels=_CLASS_INDEX)
def multiclass_perceptron_loss(
  scores, labels, *, where=None, weights=None, reduction="none"
):
  r"""Multiclass perceptron loss.

  .. math:: \ell = \max_c s_c - s_y

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
  name = "multiclass_perceptron_loss"
  scores, _, one_hot, elements, examples = _multiclass(
    name, scores, labels, where
  )
  values = _masked_max(scores, elements) - jnp.sum(scores * one_hot, axis=-1)
  return reduction_lib.reduce(
    values, reduction, weights=weights, where=examples, name=name
  )


@jax.jit  # compiled once per shape: eager calls would dispatch op by op.
def _sparsemax(scores: jax.Array) -> jax.Array:
  """``optax.projections.projection_simplex`` along the last axis.

  Under ``jax_enable_x64`` optax's projection promotes float32 to float64 (and
  its custom JVP then fails on float32 tangents), so it runs in the dtype optax
  promotes to and the result is cast back.
  """
  promoted = jax.eval_shape(
    projections.projection_simplex,
    jax.ShapeDtypeStruct(scores.shape[-1:], scores.dtype),
  ).dtype
  project = jnp.vectorize(projections.projection_simplex, signature="(n)->(n)")
  return project(scores.astype(promoted)).astype(scores.dtype)


@value_checks.value_rules(labels=_CLASS_INDEX)
def multiclass_sparsemax_loss(
  scores, labels, *, where=None, weights=None, reduction="none"
):
  r"""Multiclass sparsemax loss: the Fenchel-Young loss of sparsemax.

  .. math::
    \ell = \langle p, s - s_y \rangle + \tfrac12 \big(1 - \|p\|^2\big),
    \qquad p = \operatorname{sparsemax}(s)

  Zero if and only if ``sparsemax(scores)`` is the one-hot label. The
  projection onto the simplex is ``optax.projections.projection_simplex``.

  Args:
    scores: ``[..., num_classes]`` floating scores.
    labels: ``[...]`` integer class indices.
    where: boolean mask of the scores' shape (drops classes: they get
      probability 0; the label's class must stay) or of the labels' shape
      (drops examples).
    weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``labels``' shape, or a scalar for ``"sum"``/``"mean"``.

  Matches ``optax.losses.multiclass_sparsemax_loss``, which takes only
  ``[batch, num_classes]`` scores.

  >>> import jax.numpy as jnp, jaxloss
  >>> jaxloss.multiclass_sparsemax_loss(jnp.array([[1.0, 0.5, -1.0]]),
  ...                                   jnp.array([1]))
  Array([0.5625], dtype=float32)

  References:
    Martins and Astudillo, `From softmax to sparsemax: a sparse model of
    attention and multi-label classification
    <https://arxiv.org/abs/1602.02068>`_, 2016.
  """
  name = "multiclass_sparsemax_loss"
  scores, _, one_hot, elements, examples = _multiclass(
    name, scores, labels, where
  )
  if elements is not None:
    # Sparsemax gives 0 to any score at or below max - 1: masked classes drop.
    low = jax.lax.stop_gradient(_masked_max(scores, elements))[..., None] - 2
    scores = jnp.where(elements, scores, low)
  probabilities = _sparsemax(scores)
  label_scores = jnp.sum(scores * one_hot, axis=-1, keepdims=True)
  values = jnp.sum(probabilities * (scores - label_scores), axis=-1) + 0.5 * (
    1 - jnp.sum(jnp.square(probabilities), axis=-1)
  )
  return reduction_lib.reduce(
    values, reduction, weights=weights, where=examples, name=name
  )


def make_fenchel_young_loss(max_fun):
  r"""Builds the Fenchel-Young loss of a max function (a regularised max).

  .. math:: \ell(s, y) = \Omega^*(s) - \langle y, s \rangle

  Args:
    max_fun: ``(scores, *args, **kwargs) -> scalar``, the regularised max
      :math:`\Omega^*` over a vector of scores (e.g.
      ``jax.scipy.special.logsumexp``, whose loss is the cross-entropy up to a
      constant).

  Returns:
    ``loss(scores, targets, *args, where=None, weights=None,
    reduction="none", **kwargs)``: ``scores`` and ``targets`` are
    ``[..., num_classes]``, the loss works over the last axis and returns
    ``[...]`` per-example values (``where`` and ``weights`` have that shape),
    or a scalar for ``"sum"``/``"mean"``; ``*args`` and ``**kwargs`` go to
    ``max_fun``.

  Matches ``optax.losses.make_fenchel_young_loss``.

  >>> import jax.numpy as jnp, jaxloss
  >>> from jax.scipy.special import logsumexp
  >>> loss = jaxloss.make_fenchel_young_loss(logsumexp)
  >>> loss(jnp.array([[0.0, 0.0]]), jnp.array([[1.0, 0.0]]))
  Array([0.6931472], dtype=float32)

  References:
    Blondel, Martins and Niculae, `Learning with Fenchel-Young losses
    <https://arxiv.org/abs/1901.02324>`_, 2020.
  """
  max_last_axis = jnp.vectorize(max_fun, signature="(n)->()")

  def fenchel_young_loss(
    scores, targets, *args, where=None, weights=None, reduction="none", **kwargs
  ):
    name = "fenchel_young_loss"
    scores, targets = _scores_and_targets(
      name, scores, targets, scores_arg="scores"
    )
    _class_axis(name, "scores", scores)
    values = max_last_axis(scores, *args, **kwargs) - jnp.sum(
      targets * scores, axis=-1
    )
    return reduction_lib.reduce(
      values, reduction, weights=weights, where=where, name=name
    )

  return fenchel_young_loss


# --------------------------------------------------------------------------- #
# torch's multi-class margins


@value_checks.value_rules(labels=_CLASS_INDEX)
def multi_margin_loss(
  scores,
  labels,
  *,
  p=1,
  margin=1.0,
  class_weights=None,
  where=None,
  weights=None,
  reduction="none",
):
  r"""Multi-class margin (Weston-Watkins) loss, as torch computes it.

  .. math::
    \ell = \frac{w_y}{C} \sum_{c \ne y} \max(0, m - s_y + s_c)^p

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
  name = "multi_margin_loss"
  checks.option(name, "p", p, (1, 2))
  checks.nonnegative(name, "margin", margin)
  scores, labels, one_hot, elements, examples = _multiclass(
    name, scores, labels, where
  )
  margin = jnp.asarray(margin, scores.dtype)
  label_scores = jnp.sum(scores * one_hot, axis=-1, keepdims=True)
  terms = jax.nn.relu(margin - label_scores + scores)
  if p == 2:
    terms = jnp.square(terms)
  others = one_hot == 0 if elements is None else (one_hot == 0) & elements
  values = jnp.sum(jnp.where(others, terms, 0), axis=-1) / _class_count(
    elements, scores
  )
  if class_weights is not None:
    values = (
      values * _per_class(name, "class_weights", class_weights, scores)[labels]
    )
  return reduction_lib.reduce(
    values, reduction, weights=weights, where=examples, name=name
  )


@value_checks.value_rules(labels=value_checks.unit_interval)
def multilabel_soft_margin_loss(
  logits,
  labels,
  *,
  class_weights=None,
  where=None,
  weights=None,
  reduction="none",
):
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
  name = "multilabel_soft_margin_loss"
  logits, labels = _scores_and_targets(
    name, logits, labels, scores_arg="logits", targets_arg="labels"
  )
  _class_axis(name, "logits", logits)
  elements, examples = reduction_lib.split_where(name, where, logits.shape, -1)
  terms = labels * jax.nn.softplus(-logits) + (1 - labels) * jax.nn.softplus(
    logits
  )
  if class_weights is not None:
    terms = terms * jnp.broadcast_to(
      _per_class(name, "class_weights", class_weights, logits), terms.shape
    )
  if elements is not None:
    terms = jnp.where(elements, terms, 0)
  values = jnp.sum(terms, axis=-1) / _class_count(elements, logits)
  return reduction_lib.reduce(
    values, reduction, weights=weights, where=examples, name=name
  )


__all__ = [
  "hinge_loss",
  "make_fenchel_young_loss",
  "multi_margin_loss",
  "multiclass_hinge_loss",
  "multiclass_perceptron_loss",
  "multiclass_sparsemax_loss",
  "multilabel_soft_margin_loss",
  "perceptron_loss",
  "soft_margin_loss",
  "sparsemax_loss",
  "squared_hinge_loss",
]
