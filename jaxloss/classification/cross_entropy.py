"""Cross-entropy losses: binary, softmax (soft and integer labels) and the
negative log-likelihood, with label smoothing, class weights and
perplexity.

Names shared with ``optax.losses`` keep optax's positional signature,
defaults and values.
"""

from __future__ import annotations

import math
from typing import Literal, get_args

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss._core import checks, numerics, value_checks
from jaxloss._core import labels as labels_lib
from jaxloss._core.loss import loss
from jaxloss._core.reduction import Reduction, reduce, split_where
from jaxloss.classification import _inputs

WeightMethod = Literal["effective_number", "inverse", "inverse_sqrt"]
_WEIGHT_METHODS: tuple[str, ...] = get_args(WeightMethod)


@loss(labels=value_checks.unit_interval)
def sigmoid_binary_cross_entropy(
  logits: ArrayLike,
  labels: ArrayLike,
  *,
  pos_weight: ArrayLike | None = None,
  class_weights: ArrayLike | None = None,
  label_smoothing: ArrayLike = 0.0,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""Binary cross-entropy on logits, elementwise.

  .. math::
    \ell = -w \big(w_+\, y \log \sigma(x) + (1 - y) \log \sigma(-x)\big),
    \qquad y \leftarrow (1 - \varepsilon)\, y + \varepsilon / 2

  Args:
    logits: ``[...]`` floating logits.
    labels: ``[...]`` targets in [0, 1] (float, int or bool), same shape.
    pos_weight: optional weight ``w_+`` of the positive term, broadcastable to
      ``logits`` (per class in a multi-label problem; see
      :func:`pos_weight_from_counts`): torch's ``pos_weight=``.
    class_weights: optional rescaling ``w`` of each element's loss,
      broadcastable to ``logits`` (``[num_classes]`` weighs the classes of the
      last axis): torch's ``weight=``. ``"mean"`` still averages over all
      elements, as torch does (not a weighted mean: ``weights`` gives that).
    label_smoothing: ``ε`` in [0, 1]: targets move towards 1/2.
    where, weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``[...]`` elementwise loss, or a scalar for ``"sum"``/``"mean"``.

  Matches ``optax.losses.sigmoid_binary_cross_entropy`` and, with
  ``pos_weight`` and ``class_weights``,
  ``torch.nn.functional.binary_cross_entropy_with_logits`` (``weight=``).

  >>> import jax.numpy as jnp, jaxloss
  >>> jaxloss.sigmoid_binary_cross_entropy(jnp.array([0.0, 2.0]),
  ...                                      jnp.array([1.0, 0.0]))
  Array([0.6931472, 2.126928 ], dtype=float32)

  References:
    Goodfellow, Bengio and Courville, `Deep Learning
    <https://www.deeplearningbook.org/contents/prob.html>`_, 2016.
  """
  logits, labels = _inputs.scores_and_targets(logits, labels)
  checks.in_unit_interval("label_smoothing", label_smoothing)
  if not (checks.is_static_number(label_smoothing) and label_smoothing == 0):
    labels = labels * (1 - label_smoothing) + 0.5 * label_smoothing
  if pos_weight is None:
    values = numerics.sigmoid_cross_entropy(logits, labels)
  else:
    log_p, log_not_p = numerics.log_sigmoid_pair(logits)
    positive = labels * log_p
    positive = positive * checks.broadcast_weights(
      "pos_weight", pos_weight, logits
    )
    values = -positive - (1 - labels) * log_not_p
  if class_weights is not None:
    values = values * checks.broadcast_weights(
      "class_weights", class_weights, logits
    )
  return reduce(values, reduction, weights=weights, where=where)


@loss(
  probabilities=value_checks.unit_interval, labels=value_checks.unit_interval
)
def binary_cross_entropy(
  probabilities: ArrayLike,
  labels: ArrayLike,
  *,
  class_weights: ArrayLike | None = None,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""Binary cross-entropy on probabilities, with torch's log clamp at −100.

  .. math::
    \ell = -w \big(y \max(\log p, -100) + (1 - y) \max(\log(1 - p), -100)\big)

  Probabilities of exactly 0 and 1 give finite values; in the clamped region
  the loss is flat, so its gradient there is 0.

  Args:
    probabilities: ``[...]`` predicted probabilities in [0, 1].
    labels: ``[...]`` targets in [0, 1], same shape.
    class_weights: optional rescaling ``w`` of each element's loss,
      broadcastable to ``probabilities`` (``[num_classes]`` weighs the last
      axis): torch's ``weight=``. ``"mean"`` still averages over all
      elements, as torch does (not a weighted mean: ``weights`` gives that).
    where, weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``[...]`` elementwise loss, or a scalar for ``"sum"``/``"mean"``.

  Matches ``torch.nn.functional.binary_cross_entropy`` (``weight=``).

  >>> import jax.numpy as jnp, jaxloss
  >>> jaxloss.binary_cross_entropy(jnp.array([0.5, 0.0]), jnp.array([1.0, 1.0]))
  Array([  0.6931472, 100.       ], dtype=float32)

  References:
    Goodfellow, Bengio and Courville, `Deep Learning
    <https://www.deeplearningbook.org/contents/prob.html>`_, 2016.
  """
  probabilities, labels = _inputs.scores_and_targets(
    probabilities, labels, "probabilities"
  )
  values = -(
    labels * numerics.clamped_log(probabilities)
    + (1 - labels) * numerics.clamped_log(1 - probabilities)
  )
  if class_weights is not None:
    values = values * checks.broadcast_weights(
      "class_weights", class_weights, probabilities
    )
  return reduce(values, reduction, weights=weights, where=where)


@loss(labels=value_checks.unit_interval)
def softmax_cross_entropy(
  logits: ArrayLike,
  labels: ArrayLike,
  axis: int | tuple[int, ...] | None = -1,
  where: ArrayLike | None = None,
  *,
  label_smoothing: ArrayLike = 0.0,
  class_weights: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""Cross-entropy between soft (or one-hot) labels and ``softmax(logits)``.

  .. math::
    \ell = -\sum_c w_c\, y_c \log \operatorname{softmax}(x)_c, \qquad
    y \leftarrow (1 - \varepsilon)\, y + \varepsilon / C

  A term with ``y_c = 0`` counts as 0 even where ``x_c = -inf`` (optax gives
  NaN there; :func:`safe_softmax_cross_entropy` is the optax name for this).
  A positive ``y_c`` on a ``-inf`` logit gives at least ``y_c`` times the
  dtype's largest finite number instead of ``inf`` (gradient ``-y_c``, as
  optax's): without a class mask the loss is one fused
  :func:`jax.custom_jvp` (:func:`jaxloss._core.numerics.soft_cross_entropy`,
  docs/design.md, "Cross-entropy speed").

  Args:
    logits: ``[..., num_classes]`` floating logits.
    labels: ``[..., num_classes]`` target distributions, same shape.
    axis: the class axis: an int, a tuple of ints (flattened into one class
      axis, as in optax) or ``None`` (all axes).
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

  References:
    Szegedy et al., `Rethinking the Inception Architecture for Computer
    Vision <https://arxiv.org/abs/1512.00567>`_, 2016 (label smoothing).
  """
  logits, labels, elements, examples = _inputs.soft_label_inputs(
    logits, labels, axis, where, label_smoothing
  )
  if class_weights is not None:
    class_weights = _inputs.class_weight_vector(
      class_weights, logits.shape[-1], logits.dtype
    )
    labels = labels * class_weights.reshape((1,) * (labels.ndim - 1) + (-1,))
  values = _inputs.soft_cross_entropy(logits, labels, elements)
  return reduce(values, reduction, weights=weights, where=examples)


@loss(labels=value_checks.unit_interval)
def safe_softmax_cross_entropy(
  logits: ArrayLike,
  labels: ArrayLike,
  *,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""Softmax cross-entropy with ``0 \log 0 = 0``, also where a logit is −inf.

  .. math::
    \ell = -\sum_{c:\, y_c > 0} y_c \log \operatorname{softmax}(x)_c

  Logits of ``-inf`` (classes ruled out) with label 0 give finite values and
  gradients; a logit of ``-inf`` with a positive label ``y_c`` gives at least
  ``y_c`` times the dtype's largest finite number (optax: ``inf``; the
  gradient is ``-y_c`` in both), the price of one fused pass
  (docs/design.md, "Cross-entropy speed").

  Args:
    logits: ``[..., num_classes]`` logits, possibly ``-inf``.
    labels: ``[..., num_classes]`` target distributions, same shape.
    where: boolean mask of the logits' shape (drops classes) or of the
      per-example shape (drops examples).
    weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``[...]`` per-example loss, or a scalar for ``"sum"``/``"mean"``.

  Matches ``optax.losses.safe_softmax_cross_entropy``.

  >>> import jax.numpy as jnp, jaxloss
  >>> jaxloss.safe_softmax_cross_entropy(jnp.array([[0.0, 0.0, -jnp.inf]]),
  ...                                    jnp.array([[0.5, 0.5, 0.0]]))
  Array([0.6931472], dtype=float32)

  References:
    Goodfellow, Bengio and Courville, `Deep Learning
    <https://www.deeplearningbook.org/contents/prob.html>`_, 2016.
  """
  logits, labels, elements, examples = _inputs.soft_label_inputs(
    logits, labels, -1, where
  )
  values = _inputs.soft_cross_entropy(logits, labels, elements)
  return reduce(values, reduction, weights=weights, where=examples)


@loss(labels=value_checks.class_index("logits"))
def softmax_cross_entropy_with_integer_labels(
  logits: ArrayLike,
  labels: ArrayLike,
  axis: int | tuple[int, ...] = -1,
  where: ArrayLike | None = None,
  *,
  label_smoothing: ArrayLike = 0.0,
  class_weights: ArrayLike | None = None,
  ignore_index: int | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""Cross-entropy between integer class labels and ``softmax(logits)``.

  .. math::
    \ell = (1 - \varepsilon)\, w_y \big(-\log p_y\big)
           + \frac{\varepsilon}{C} \sum_c w_c \big(-\log p_c\big),
    \qquad p = \operatorname{softmax}(x)

  (``w = 1`` without ``class_weights``), torch 2.13's formula: each smoothing
  term is weighted by its own class, and ``"mean"`` divides by
  ``Σ w_y`` (times ``weights``, over the unmasked examples).

  A label outside ``[0, C)`` that is neither ``ignore_index`` nor masked out
  by ``where`` gives **NaN** for its example, on purpose
  (:mod:`jaxloss._core.labels`): optax's function of the same name reads
  label ``-1`` as the last class, silently. Ignored and masked examples are
  dropped whatever their label.

  Args:
    logits: ``[..., num_classes]`` floating logits.
    labels: ``[...]`` integer class indices (the logits' shape without
      ``axis``).
    axis: the class axis: an int, or a tuple of ints flattened into one class
      axis (labels are then flat indices, as in optax).
    where: boolean mask of the logits' shape (drops classes; a label's own
      class should stay unmasked) or of the labels' shape (drops examples).
    label_smoothing: ``ε`` in [0, 1], spread over the ``C`` unmasked classes
      (torch's convention: all classes).
    class_weights: optional ``[num_classes]`` weights ``w``. Without
      ``label_smoothing`` they become per-example weights ``w_y``, so
      ``"mean"`` is torch's weighted mean ``Σ w_y ℓ / Σ w_y``; with it, the
      formula above (``"none"`` gives ``ℓ``, ``"mean"`` ``Σ ℓ / Σ w_y``).
    ignore_index: optional label value that takes no part (torch's
      ``ignore_index``): sugar for ``where=labels != ignore_index``.
    weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``labels``' shape, or a scalar for ``"sum"``/``"mean"``.

  Matches ``optax.losses.softmax_cross_entropy_with_integer_labels`` (for
  valid labels) and ``torch.nn.functional.cross_entropy`` with any of
  ``label_smoothing``, ``weight`` and ``ignore_index``.

  >>> import jax.numpy as jnp, jaxloss
  >>> logits = jnp.array([[2.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
  >>> jaxloss.softmax_cross_entropy_with_integer_labels(
  ...     logits, jnp.array([0, 2]))
  Array([0.2395..., 1.0986...], dtype=float32)

  References:
    Szegedy et al., `Rethinking the Inception Architecture for Computer
    Vision <https://arxiv.org/abs/1512.00567>`_, 2016 (label smoothing).
  """
  checks.in_unit_interval("label_smoothing", label_smoothing)
  logits, labels, elements, examples = _inputs.integer_label_inputs(
    logits, labels, axis, where, ignore_index, shift=False
  )
  num_classes = logits.shape[-1]
  # log Σ exp(x − m) + (m − x_y): two terms >= 0, both relative to the max
  # m, so small losses keep their precision; one max, one fused Σ exp.
  top, log_total = numerics.max_and_log_sum_exp(logits, elements)
  values = log_total + (top - labels_lib.pick(logits, labels))
  smoothed = not (
    checks.is_static_number(label_smoothing) and label_smoothing == 0
  )
  if smoothed and class_weights is not None:
    values = _weighted_smoothing(
      logits,
      labels,
      values,
      top,
      log_total,
      elements,
      label_smoothing,
      class_weights,
    )
    values = labels_lib.nan_unless_valid(values, labels, num_classes)
    # torch: Σ ℓ / Σ w_y (ℓ already holds the class weights).
    if reduction != "mean":
      return reduce(values, reduction, weights=weights, where=examples)
    total = reduce(values, "sum", weights=weights, where=examples)
    label_weights = _inputs.label_class_weights(class_weights, labels, logits)
    return total / _nonzero(
      reduce(label_weights, "sum", weights=weights, where=examples)
    )
  if smoothed:
    shifted = logits - top[..., None]
    if elements is None:
      mean_shifted = jnp.mean(shifted, axis=-1)
    else:
      mean_shifted = numerics.safe_divide(
        jnp.sum(jnp.where(elements, shifted, 0), axis=-1),
        jnp.sum(elements, axis=-1, dtype=logits.dtype),
      )
    smoothing = numerics.like(label_smoothing, values)
    values = (1 - smoothing) * values + smoothing * (log_total - mean_shifted)
  values = labels_lib.nan_unless_valid(values, labels, num_classes)
  weights = _inputs.combine_weights(labels, class_weights, weights, logits)
  return reduce(values, reduction, weights=weights, where=examples)


def _weighted_smoothing(
  logits: jax.Array,
  labels: jax.Array,
  nll: jax.Array,
  top: jax.Array,
  log_total: jax.Array,
  elements: jax.Array | None,
  label_smoothing: ArrayLike,
  class_weights: ArrayLike,
) -> jax.Array:
  r"""torch's smoothed, class-weighted cross-entropy per example:
  ``(1 − ε) w_y nll + (ε / C) Σ_c w_c (−log p_c)`` over the ``C`` unmasked
  classes, with ``−log p_c = log_total − (x_c − top)``."""
  class_weights = _inputs.class_weight_vector(
    class_weights, logits.shape[-1], logits.dtype
  )
  shifted = logits - top[..., None]
  row = class_weights.reshape((1,) * (logits.ndim - 1) + (-1,))
  count = _inputs.class_count(elements, logits)
  if elements is None:
    weight_sum = jnp.sum(row, axis=-1)
    weighted_shift = jnp.sum(row * shifted, axis=-1)
  else:
    masked = jnp.where(elements, row, 0)
    weight_sum = jnp.sum(masked, axis=-1)
    weighted_shift = jnp.sum(jnp.where(elements, masked * shifted, 0), axis=-1)
  smooth = (weight_sum * log_total - weighted_shift) / count
  label_weights = class_weights[labels_lib.clipped(labels, logits.shape[-1])]
  eps = numerics.like(label_smoothing, nll)
  return (1 - eps) * label_weights * nll + eps * smooth


def _nonzero(x: jax.Array) -> jax.Array:
  """``x``, with 1 where it is 0 (an empty weighted mean is 0, not NaN)."""
  return jnp.where(x == 0, jnp.ones_like(x), x)


@loss(labels=value_checks.class_index("log_probabilities"))
def nll_loss(
  log_probabilities: ArrayLike,
  labels: ArrayLike,
  *,
  axis: int = -1,
  class_weights: ArrayLike | None = None,
  ignore_index: int | None = None,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""Negative log-likelihood of integer labels under given log-probabilities.

  .. math::
    \ell = -w_y \log p_y

  A label outside ``[0, C)`` that is neither ``ignore_index`` nor masked out
  by ``where`` gives **NaN** for its example (torch raises an index error;
  :mod:`jaxloss._core.labels`).

  Args:
    log_probabilities: ``[..., num_classes]`` log-probabilities (e.g. from
      ``jax.nn.log_softmax``); not normalised again.
    labels: ``[...]`` integer class indices (the shape without ``axis``).
    axis: the class axis (an int; torch's layout is ``axis=1``).
    class_weights: optional ``[num_classes]`` weights; they become per-example
      weights ``w_y``, so ``"mean"`` is ``Σ w_y ℓ / Σ w_y``.
    ignore_index: optional label value that takes no part.
    where: boolean mask broadcastable to the labels' shape (drops examples;
      nothing is normalised over the classes, so there is no class mask).
    weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``labels``' shape (``w_y`` included, 0 where ignored), or a scalar.

  Matches ``torch.nn.functional.nll_loss`` (``weight``, ``ignore_index``).

  >>> import jax.numpy as jnp, jaxloss
  >>> log_p = jnp.log(jnp.array([[0.5, 0.25, 0.25], [0.1, 0.1, 0.8]]))
  >>> jaxloss.nll_loss(log_p, jnp.array([0, 2]),
  ...                  class_weights=jnp.array([2.0, 1.0, 1.0]))
  Array([1.3862..., 0.2231...], dtype=float32)

  References:
    Goodfellow, Bengio and Courville, `Deep Learning
    <https://www.deeplearningbook.org/contents/prob.html>`_, 2016.
  """
  log_probabilities = checks.as_float("log_probabilities", log_probabilities)
  labels = checks.as_labels("labels", labels)
  axis = checks.canonical_axis(axis, log_probabilities.ndim)
  checks.labels_for(labels, log_probabilities, axis, "log_probabilities")
  mask = None
  if where is not None:
    mask = checks.broadcast_mask("where", where, labels.shape)
  labels, examples = _inputs.drop_ignored(labels, ignore_index, mask)
  values = -labels_lib.pick(log_probabilities, labels, axis)
  values = labels_lib.nan_unless_valid(
    values, labels, log_probabilities.shape[axis]
  )
  weights = _inputs.combine_weights(
    labels, class_weights, weights, log_probabilities, axis
  )
  return reduce(values, reduction, weights=weights, where=examples)


# --------------------------------------------------------------------------- #
# label smoothing, class weights and perplexity


@loss(labels=value_checks.unit_interval)
def smooth_labels(
  labels: ArrayLike,
  alpha: ArrayLike,
  *,
  axis: int | tuple[int, ...] | None = -1,
  where: ArrayLike | None = None,
) -> jax.Array:
  r"""Label smoothing: mixes the labels with the uniform distribution.

  .. math:: y \leftarrow (1 - \alpha)\, y + \alpha / K

  Args:
    labels: ``[..., num_classes]`` one-hot (or soft) floating labels.
    alpha: smoothing factor in [0, 1].
    axis: the class axis (int, tuple of ints, or ``None``).
    where: optional boolean mask broadcastable to ``labels``: ``K`` counts the
      unmasked classes (at least 1, so a fully masked row stays finite; optax
      gives inf there). Masked entries are smoothed too, as in optax.

  Returns:
    The smoothed labels, ``labels``' shape.

  Matches ``optax.losses.smooth_labels``.

  >>> import jax.numpy as jnp, jaxloss
  >>> jaxloss.smooth_labels(jnp.array([1.0, 0.0, 0.0, 0.0]), 0.5)
  Array([0.625, 0.125, 0.125, 0.125], dtype=float32)

  References:
    Müller et al., `When does label smoothing help?
    <https://arxiv.org/abs/1906.02629>`_, 2019.
  """
  labels = checks.as_float("labels", labels)
  checks.in_unit_interval("alpha", alpha)
  axes = checks.axes(axis, labels.ndim)
  num_classes: int | jax.Array
  if where is None:
    num_classes = math.prod(labels.shape[a] for a in axes)
  else:
    mask = checks.broadcast_mask("where", where, labels.shape)
    num_classes = jnp.maximum(
      jnp.sum(mask, axis=axes, keepdims=True, dtype=labels.dtype), 1
    )
  weight = numerics.like(alpha, labels)
  return (1 - weight) * labels + weight / num_classes


@loss(counts=value_checks.nonnegative)
def class_weights_from_counts(
  counts: ArrayLike,
  *,
  method: WeightMethod = "effective_number",
  beta: ArrayLike = 0.999,
) -> jax.Array:
  r"""Class weights from class frequencies, normalised to sum to ``C``.

  .. math::
    w_c \propto \frac{1 - \beta}{1 - \beta^{n_c}} \;(\text{effective number}),
    \quad \frac{1}{n_c} \;(\text{inverse}), \quad
    \frac{1}{\sqrt{n_c}} \;(\text{inverse\_sqrt}), \qquad \sum_c w_c = C

  A class with a count of 0 gets weight 0 (it never occurs as a label) and
  the others still sum to ``C``; if every count is 0 all weights are 1.

  Args:
    counts: ``[num_classes]`` non-negative class counts (integer or float).
    method: ``"effective_number"`` (Cui et al.), ``"inverse"`` or
      ``"inverse_sqrt"``.
    beta: ``β`` in [0, 1) for ``"effective_number"``: 0 gives equal weights,
      ``β → 1`` the inverse frequency.

  Returns:
    ``[num_classes]`` weights (float32 for integer counts), e.g. for the
    ``class_weights`` of the cross-entropies.

  Matches the class-balanced weights of Cui et al.'s reference code.

  >>> import jax.numpy as jnp, jaxloss
  >>> jaxloss.class_weights_from_counts(jnp.array([1, 4, 0]),
  ...                                   method="inverse_sqrt")
  Array([2., 1., 0.], dtype=float32)

  References:
    Cui et al., `Class-Balanced Loss Based on Effective Number of Samples
    <https://arxiv.org/abs/1901.05555>`_, 2019.
  """
  checks.option("method", method, _WEIGHT_METHODS)
  checks.in_unit_interval("beta", beta, closed=False)
  counts = jnp.asarray(counts)
  if jnp.issubdtype(counts.dtype, jnp.integer):
    counts = counts.astype(jnp.float32)
  counts = checks.as_float("counts", counts)
  checks.rank("counts", counts, 1)
  present = counts > 0
  n = jnp.where(present, counts, 1)
  if method == "inverse":
    raw = 1 / n
  elif method == "inverse_sqrt":
    raw = jax.lax.rsqrt(n)
  else:  # (1 - β) / (1 - β^n), accurate for β close to 1.
    log_beta = jnp.log(jnp.asarray(beta, counts.dtype))
    raw = jnp.expm1(log_beta) / jnp.expm1(n * log_beta)
  raw = jnp.where(present, raw, 0)
  total = jnp.sum(raw)
  scale = counts.shape[0] / jnp.where(total > 0, total, 1)
  return jnp.where(total > 0, raw * scale, 1)


@loss(labels=value_checks.unit_interval)
def pos_weight_from_counts(labels: ArrayLike) -> jax.Array:
  r"""Per-class ``pos_weight`` for imbalanced multi-label data: negatives over
  positives.

  .. math::
    w_{+,c} = \frac{\sum_i (1 - y_{ic})}{\sum_i y_{ic}}
    \quad (\text{1 if } \textstyle\sum_i y_{ic} = 0)

  A class with no positive example gets 1: there is no positive term to
  weigh, and 1 leaves the loss as it is (the ratio would be ``inf``, and
  ``0 · inf`` a NaN in the loss). A class with no negative example gets 0,
  the ratio itself.

  Args:
    labels: ``[examples, num_classes]`` multi-hot labels in [0, 1] (float,
      int or bool; soft labels count fractionally); any leading axes are
      examples too.

  Returns:
    ``[num_classes]`` weights (float32 for integer or boolean labels), for
    the ``pos_weight`` of :func:`sigmoid_binary_cross_entropy` (torch's
    ``BCEWithLogitsLoss(pos_weight=...)``).

  Matches the ``pos_weight`` that torch's ``BCEWithLogitsLoss`` documentation
  recommends (negatives over positives), with 1 for a class without
  positives.

  >>> import jax.numpy as jnp, jaxloss
  >>> jaxloss.pos_weight_from_counts(jnp.array([[1, 0, 0], [0, 0, 1],
  ...                                           [0, 0, 1], [0, 0, 1]]))
  Array([3.        , 1.        , 0.33333334], dtype=float32)

  References:
    PyTorch, `BCEWithLogitsLoss
    <https://pytorch.org/docs/stable/generated/torch.nn.BCEWithLogitsLoss.html>`_
    (``pos_weight``: "the number of negative examples divided by the number
    of positive examples").
  """
  labels = jnp.asarray(labels)
  if not jnp.issubdtype(labels.dtype, jnp.floating):  # int or bool: float32
    labels = checks.as_targets("labels", labels, jnp.zeros((), jnp.float32))
  checks.min_rank("labels", labels, 1, "a class axis")
  axes = tuple(range(labels.ndim - 1))
  positives = jnp.sum(labels, axis=axes)
  negatives = jnp.sum(1 - labels, axis=axes)
  some = positives > 0
  return jnp.where(some, negatives / jnp.where(some, positives, 1), 1)


@loss(labels=value_checks.class_index("logits", axis_arg=None))
def perplexity(
  logits: ArrayLike,
  labels: ArrayLike,
  *,
  where: ArrayLike | None = None,
  per_sequence: bool = False,
) -> jax.Array:
  r"""Perplexity of integer tokens under ``softmax(logits)`` (a metric).

  .. math::
    \mathrm{PPL} = \exp\Big(\frac{\sum_{t:\,m_t} -\log p_t(y_t)}
                                 {\sum_t m_t}\Big)

  over all unmasked tokens (corpus perplexity), or per sequence. An empty mask
  (or an empty sequence) gives 1, the exponential of the empty mean 0. The
  value saturates at the dtype's largest finite number, with gradient 0 there,
  instead of overflowing.

  An unmasked token outside ``[0, vocab)`` gives **NaN** (the corpus's, or
  its sequence's, perplexity: :mod:`jaxloss._core.labels`); masked tokens
  are dropped whatever their label.

  Args:
    logits: ``[..., time, vocab]`` floating logits.
    labels: ``[..., time]`` integer tokens.
    where: boolean mask of the tokens' shape ``[..., time]`` (padding) or of
      the sequences' shape ``[...]``; masked tokens may hold any label.
    per_sequence: one perplexity per sequence instead of one for the corpus.

  Returns:
    A scalar, or ``[...]`` with ``per_sequence=True``. Not a loss: there is
    no ``weights`` or ``reduction``.

  Matches ``exp`` of the token-mean of
  :func:`softmax_cross_entropy_with_integer_labels`.

  >>> import jax.numpy as jnp, jaxloss
  >>> logits = jnp.zeros((2, 3, 5))
  >>> jaxloss.perplexity(logits, jnp.zeros((2, 3), jnp.int32))
  Array(5..., dtype=float32)

  References:
    Jelinek et al., `Perplexity — a measure of the difficulty of speech
    recognition tasks <https://doi.org/10.1121/1.2016299>`_, 1977.
  """
  logits = checks.as_float("logits", logits)
  labels = checks.as_labels("labels", labels)
  checks.min_rank("logits", logits, 2, "[..., time, vocab]")
  checks.labels_for(labels, logits, logits.ndim - 1)
  tokens, _ = split_where(where, labels.shape, labels.ndim - 1)
  if tokens is not None:
    labels = jnp.where(tokens, labels, 0)
  nll = softmax_cross_entropy_with_integer_labels(logits, labels)
  axis = -1 if per_sequence else None
  if tokens is None:
    mean_nll = jnp.mean(nll, axis=axis)
  else:
    mean_nll = numerics.safe_divide(
      jnp.sum(jnp.where(tokens, nll, 0), axis=axis),
      jnp.sum(tokens, axis=axis, dtype=nll.dtype),
    )
  log_max = math.log(float(jnp.finfo(nll.dtype).max)) - 0.01
  return jnp.exp(jnp.minimum(mean_nll, log_max))


__all__ = [
  "binary_cross_entropy",
  "class_weights_from_counts",
  "nll_loss",
  "perplexity",
  "pos_weight_from_counts",
  "safe_softmax_cross_entropy",
  "sigmoid_binary_cross_entropy",
  "smooth_labels",
  "softmax_cross_entropy",
  "softmax_cross_entropy_with_integer_labels",
]
