"""Focal and polynomial classification losses: the sigmoid and softmax focal
losses and the Poly-1 forms of the focal loss and the cross-entropy.

Names shared with ``optax.losses`` keep optax's positional signature,
defaults and values.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss._core import checks, numerics, value_checks
from jaxloss._core import labels as labels_lib
from jaxloss._core.loss import loss
from jaxloss._core.reduction import Reduction, reduce
from jaxloss.classification import _inputs


@loss(labels=value_checks.unit_interval)
def sigmoid_focal_loss(
  logits: ArrayLike,
  labels: ArrayLike,
  *,
  alpha: ArrayLike | None = None,
  gamma: ArrayLike = 2.0,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""Sigmoid focal loss, elementwise: cross-entropy scaled by ``(1 − p_t)^γ``.

  .. math::
    \ell = -\alpha_t (1 - p_t)^\gamma \log p_t, \qquad
    p_t = y\,\sigma(x) + (1 - y)(1 - \sigma(x)), \qquad
    \alpha_t = \alpha y + (1 - \alpha)(1 - y)

  The focal weight is computed in log space, so ``γ < 1`` and logits of
  ±1e4 give finite values and gradients (with respect to the logits; labels
  are targets).

  Args:
    logits: ``[...]`` floating logits.
    labels: ``[...]`` targets in [0, 1] (binary or soft), same shape.
    alpha: optional balance ``α`` of the positive class (no weighting when
      ``None``), a scalar or broadcastable to ``logits``.
    gamma: focusing exponent ``γ >= 0``; ``γ = 0`` gives the cross-entropy.
    where, weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``[...]`` elementwise loss, or a scalar for ``"sum"``/``"mean"``.

  Matches ``optax.losses.sigmoid_focal_loss`` and
  ``torchvision.ops.sigmoid_focal_loss`` (whose ``alpha`` defaults to 0.25).

  >>> import jax.numpy as jnp, jaxloss
  >>> jaxloss.sigmoid_focal_loss(jnp.array([0.0, 2.0]), jnp.array([1.0, 1.0]))
  Array([0.1732..., 0.0018...], dtype=float32)

  References:
    Lin et al., `Focal Loss for Dense Object Detection
    <https://arxiv.org/abs/1708.02002>`_, 2017.
  """
  ce, log_1m_pt, alpha_t = _sigmoid_focal_terms(logits, labels, alpha, gamma)
  values = alpha_t * ce * jnp.exp(numerics.like(gamma, ce) * log_1m_pt)
  return reduce(values, reduction, weights=weights, where=where)


@loss(labels=value_checks.unit_interval)
def poly1_focal_loss(
  logits: ArrayLike,
  labels: ArrayLike,
  *,
  epsilon: ArrayLike = 1.0,
  gamma: ArrayLike = 2.0,
  alpha: ArrayLike | None = None,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""Poly-1 focal loss: the sigmoid focal loss plus ``ε (1 − p_t)^{γ+1}``.

  .. math::
    \ell = -\alpha_t (1 - p_t)^\gamma \log p_t
      + \varepsilon (1 - p_t)^{\gamma + 1}

  This is the Poly-1 form of the *sigmoid* focal loss (the paper's
  ``poly1_focal_loss`` code): the extra polynomial term is not
  weighted by ``α_t``. ``p_t`` and ``α_t`` are as in :func:`sigmoid_focal_loss`.

  Args:
    logits: ``[...]`` floating logits.
    labels: ``[...]`` targets in [0, 1], same shape.
    epsilon: coefficient ``ε`` of the leading polynomial term (``ε >= -1``).
    gamma: focusing exponent ``γ >= 0``.
    alpha: optional balance of the positive class (``None``: no weighting).
    where, weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``[...]`` elementwise loss, or a scalar for ``"sum"``/``"mean"``.

  Matches the paper's ``poly1_focal_loss`` (``alpha=None`` for its
  ``alpha=-1``).

  >>> import jax.numpy as jnp, jaxloss
  >>> jaxloss.poly1_focal_loss(jnp.array([0.0, 2.0]), jnp.array([1.0, 0.0]))
  Array([0.2982..., 2.3334...], dtype=float32)

  References:
    Leng et al., `PolyLoss: A Polynomial Expansion Perspective of
    Classification Loss Functions <https://arxiv.org/abs/2204.12511>`_, 2022.
  """
  ce, log_1m_pt, alpha_t = _sigmoid_focal_terms(logits, labels, alpha, gamma)
  gamma = numerics.like(gamma, ce)
  values = alpha_t * ce * jnp.exp(gamma * log_1m_pt) + numerics.like(
    epsilon, ce
  ) * jnp.exp((gamma + 1) * log_1m_pt)
  return reduce(values, reduction, weights=weights, where=where)


@loss(labels=value_checks.class_index("logits"))
def softmax_focal_loss(
  logits: ArrayLike,
  labels: ArrayLike,
  *,
  alpha: ArrayLike | None = None,
  gamma: ArrayLike = 2.0,
  axis: int | tuple[int, ...] = -1,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""Multi-class focal loss on integer labels.

  .. math::
    \ell = -\alpha_y (1 - p_y)^\gamma \log p_y, \qquad
    p = \operatorname{softmax}(x)

  ``log(1 − p_y)`` is the log-sum-exp of the other classes' logits minus the
  normaliser, so ``p_y = 1`` and ``γ < 1`` give finite values and gradients;
  its derivative is written as ``p_y (q − e_y)`` (``q`` the softmax of the
  other classes), so that logits of 1e15 and more lose no gradient to
  cancellation.

  A label outside ``[0, C)`` that is not masked out by ``where`` gives
  **NaN** for its example (:mod:`jaxloss._core.labels`).

  Args:
    logits: ``[..., num_classes]`` floating logits.
    labels: ``[...]`` integer class indices.
    alpha: optional weight: a scalar, or ``[num_classes]`` per-class weights
      ``α_y`` (inside the per-example value, so ``"mean"`` is a plain mean).
    gamma: focusing exponent ``γ >= 0``; ``γ = 0`` gives the cross-entropy.
    axis: the class axis (an int or a tuple of ints, as for
      :func:`softmax_cross_entropy_with_integer_labels`).
    where: boolean mask of the logits' shape (drops classes) or of the labels'
      shape (drops examples).
    weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``labels``' shape, or a scalar for ``"sum"``/``"mean"``.

  With ``gamma=0`` and no ``alpha`` it equals
  :func:`softmax_cross_entropy_with_integer_labels`.

  >>> import jax.numpy as jnp, jaxloss
  >>> jaxloss.softmax_focal_loss(jnp.array([[2.0, 0.0, 0.0]]), jnp.array([0]))
  Array([0.0108...], dtype=float32)

  References:
    Lin et al., `Focal Loss for Dense Object Detection
    <https://arxiv.org/abs/1708.02002>`_, 2017.
  """
  checks.nonnegative("gamma", gamma)
  logits, labels, elements, examples = _inputs.integer_label_inputs(
    logits, labels, axis, where
  )
  num_classes = logits.shape[-1]
  lse = numerics.masked_logsumexp(logits, elements)  # 0 for an empty row
  is_label = jax.nn.one_hot(labels, num_classes, dtype=jnp.bool_)
  others = ~is_label if elements is None else elements & ~is_label
  log_1m_p = _log_not_label(logits, is_label, others, elements)
  values = (lse - labels_lib.pick(logits, labels)) * jnp.exp(
    numerics.like(gamma, lse) * log_1m_p
  )
  if alpha is not None:
    values = values * _per_example_alpha(alpha, labels, logits)
  values = labels_lib.nan_unless_valid(values, labels, num_classes)
  return reduce(values, reduction, weights=weights, where=examples)


@loss(labels=value_checks.unit_interval)
def poly_loss_cross_entropy(
  logits: ArrayLike,
  labels: ArrayLike,
  *,
  epsilon: ArrayLike = 2.0,
  axis: int | tuple[int, ...] | None = -1,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""Poly-1 cross-entropy: cross-entropy plus ``ε (1 − p_t)``.

  .. math::
    \ell = -\sum_c y_c \log p_c + \varepsilon \sum_c y_c (1 - p_c),
    \qquad p = \operatorname{softmax}(x)

  Args:
    logits: ``[..., num_classes]`` floating logits.
    labels: ``[..., num_classes]`` target distributions, same shape.
    epsilon: coefficient ``ε`` of the first polynomial term (the paper uses
      2.0 for ImageNet, −1.0 for detection).
    axis: the class axis (int, tuple of ints, or ``None``).
    where: boolean mask of the logits' shape (drops classes) or of the
      per-example shape (drops examples).
    weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``[...]`` per-example loss, or a scalar for ``"sum"``/``"mean"``.

  Matches ``optax.losses.poly_loss_cross_entropy``.

  >>> import jax.numpy as jnp, jaxloss
  >>> jaxloss.poly_loss_cross_entropy(jnp.array([[0.0, 0.0]]),
  ...                                 jnp.array([[1.0, 0.0]]))
  Array([1.6931...], dtype=float32)

  References:
    Leng et al., `PolyLoss: A Polynomial Expansion Perspective of
    Classification Loss Functions <https://arxiv.org/abs/2204.12511>`_, 2022.
  """
  logits, labels, elements, examples = _inputs.soft_label_inputs(
    logits, labels, axis, where
  )
  values = _inputs.soft_cross_entropy(logits, labels, elements, epsilon)
  return reduce(values, reduction, weights=weights, where=examples)


# --------------------------------------------------------------------------- #
# helpers


def _sigmoid_focal_terms(
  logits: ArrayLike,
  labels: ArrayLike,
  alpha: ArrayLike | None,
  gamma: ArrayLike,
) -> tuple[jax.Array, jax.Array, jax.Array | int]:
  """``(cross-entropy, log(1 − p_t), α_t)`` of the sigmoid focal losses."""
  logits, labels = _inputs.scores_and_targets(logits, labels)
  checks.nonnegative("gamma", gamma)
  log_p, log_q = numerics.log_sigmoid_pair(logits)
  ce = -labels * log_p - (1 - labels) * log_q
  log_1m_pt = jax.scipy.special.logsumexp(
    jnp.stack([log_p, log_q], axis=-1),
    axis=-1,
    b=jnp.stack([1 - labels, labels], axis=-1),
  )
  if alpha is None:
    return ce, log_1m_pt, 1
  alpha = checks.broadcast_weights("alpha", alpha, logits)
  return ce, log_1m_pt, alpha * labels + (1 - alpha) * (1 - labels)


@jax.custom_jvp
def _log_not_label(
  logits: jax.Array,
  is_label: jax.Array,
  others: jax.Array,
  elements: jax.Array | None,
) -> jax.Array:
  r"""``log(1 − p_y)`` over the last axis: the log-sum-exp of the other
  (unmasked) classes minus that of all unmasked classes; the dtype's lowest
  number where no other class is left (``p_y = 1``).

  Its derivative is ``p_y (q − e_y)``, ``q`` the softmax over the other
  classes: autodiff of the difference would give ``q − p`` from two terms
  whose cotangents, multiplied by a large cross-entropy, cancel in the
  backward pass (at logits of 1e15 the gradient of the focal loss loses its
  ``+1`` at the largest logit). Belongs in ``_core/numerics.py``.
  """
  return _log_not_label_parts(logits, is_label, others, elements)[0]


def _log_not_label_parts(
  logits: jax.Array,
  is_label: jax.Array,
  others: jax.Array,
  elements: jax.Array | None,
) -> tuple[jax.Array, jax.Array, jax.Array]:
  """``(log(1 − p_y), log-sum-exp of all, log-sum-exp of the others)``."""
  lse = numerics.masked_logsumexp(logits, elements)
  any_other = jnp.any(others, axis=-1)
  log_others = jnp.where(
    any_other,
    numerics.masked_logsumexp(logits, others),
    jnp.finfo(logits.dtype).min,
  )
  return log_others - lse, lse, log_others


@_log_not_label.defjvp
def _log_not_label_jvp(
  primals: tuple[jax.Array, ...], tangents: tuple[jax.Array, ...]
) -> tuple[jax.Array, jax.Array]:
  logits, is_label, others, elements = primals
  d_logits = tangents[0]
  value, lse, log_others = _log_not_label_parts(
    logits, is_label, others, elements
  )
  label_logit = jnp.sum(jnp.where(is_label, logits, 0), axis=-1)
  p_label = jnp.exp(jnp.minimum(label_logit - lse, 0))
  q = jnp.where(
    others, jnp.exp(jnp.minimum(logits - log_others[..., None], 0)), 0
  )
  d_label = jnp.sum(jnp.where(is_label, d_logits, 0), axis=-1)
  tangent = p_label * (jnp.sum(q * d_logits, axis=-1) - d_label)
  return value, tangent


def _per_example_alpha(
  alpha: ArrayLike, labels: jax.Array, logits: jax.Array
) -> jax.Array:
  """A scalar ``alpha``, or ``alpha[labels]`` for ``[num_classes]`` weights."""
  alpha = checks.as_float("alpha", alpha).astype(logits.dtype)
  checks.rank("alpha", alpha, (0, 1))
  if alpha.ndim == 0:
    return alpha
  checks.shape("alpha", alpha, (logits.shape[-1],), "one per class")
  return alpha[labels_lib.clipped(labels, logits.shape[-1])]


__all__ = [
  "poly1_focal_loss",
  "poly_loss_cross_entropy",
  "sigmoid_focal_loss",
  "softmax_focal_loss",
]
