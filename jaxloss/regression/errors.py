"""Pointwise regression errors: squared, absolute, Huber, smooth L1, log-cosh.

Elementwise losses of ``predictions - targets`` (predictions and targets of
one shape, never broadcast; targets may be float, int or bool and are cast to
the predictions' dtype).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss._core import checks, numerics
from jaxloss._core.loss import loss
from jaxloss._core.reduction import Reduction, reduce
from jaxloss.regression._inputs import pair

__all__ = [
  "absolute_error",
  "asymmetric_huber_loss",
  "huber_loss",
  "l2_loss",
  "log_cosh",
  "lp_loss",
  "smooth_l1_loss",
  "squared_error",
]

_LOG_2 = math.log(2.0)


def _errors(predictions: ArrayLike, targets: ArrayLike | None) -> jax.Array:
  """``predictions - targets``, or ``predictions`` when ``targets is None``."""
  if targets is None:
    return checks.as_float("predictions", predictions)
  predictions, targets = pair(predictions, targets)
  return predictions - targets


def _huber(errors: jax.Array, delta: ArrayLike) -> jax.Array:
  """``½ min(|e|, δ)² + δ (|e| − min(|e|, δ))``, optax's form of Huber."""
  abs_errors = jnp.abs(errors)
  quadratic = jnp.minimum(abs_errors, delta)
  return 0.5 * jnp.square(quadratic) + delta * (abs_errors - quadratic)


@loss
def squared_error(
  predictions: ArrayLike,
  targets: ArrayLike | None = None,
  *,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""Squared error, elementwise.

  .. math:: \ell = (\hat y - y)^2

  Args:
    predictions: ``[...]`` floating predictions :math:`\hat y`.
    targets: ``[...]`` targets :math:`y`, same shape, or ``None`` for zeros.
    where, weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``[...]`` elementwise loss; a scalar for ``"sum"``/``"mean"`` (the MSE).

  Matches ``optax.losses.squared_error``.

  >>> import jax.numpy as jnp, jaxloss
  >>> jaxloss.squared_error(jnp.array([1.0, 2.0]), jnp.array([0.5, 4.0]))
  Array([0.25, 4.  ], dtype=float32)

  References:
    Hastie, Tibshirani and Friedman, `The Elements of Statistical Learning
    <https://hastie.su.domains/ElemStatLearn/>`_, 2009.
  """
  values = jnp.square(_errors(predictions, targets))
  return reduce(values, reduction, weights=weights, where=where)


@loss
def l2_loss(
  predictions: ArrayLike,
  targets: ArrayLike | None = None,
  *,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""Half the squared error, elementwise.

  .. math:: \ell = \tfrac12 (\hat y - y)^2

  Args:
    predictions: ``[...]`` floating predictions :math:`\hat y`.
    targets: ``[...]`` targets :math:`y`, same shape, or ``None`` for zeros.
    where, weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``[...]`` elementwise loss; a scalar for ``"sum"``/``"mean"``.

  Matches ``optax.losses.l2_loss``.

  >>> import jax.numpy as jnp, jaxloss
  >>> jaxloss.l2_loss(jnp.array([1.0, 2.0]), jnp.array([0.5, 4.0]))
  Array([0.125, 2.   ], dtype=float32)

  References:
    Bishop, `Pattern Recognition and Machine Learning
    <https://www.microsoft.com/en-us/research/publication/pattern-recognition-machine-learning/>`_,
    2006.
  """
  values = 0.5 * jnp.square(_errors(predictions, targets))
  return reduce(values, reduction, weights=weights, where=where)


@loss
def huber_loss(
  predictions: ArrayLike,
  targets: ArrayLike | None = None,
  *,
  delta: ArrayLike = 1.0,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""Huber loss: quadratic for errors up to ``delta``, linear beyond.

  .. math::
    \ell(a) = \begin{cases} \tfrac12 a^2 & |a| \le \delta \\
              \delta\,(|a| - \tfrac12 \delta) & |a| > \delta \end{cases},
    \qquad a = \hat y - y

  Args:
    predictions: ``[...]`` floating predictions :math:`\hat y`.
    targets: ``[...]`` targets :math:`y`, same shape, or ``None`` for zeros.
    delta: the threshold :math:`\delta > 0` (may be traced).
    where, weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``[...]`` elementwise loss; a scalar for ``"sum"``/``"mean"``.

  Matches ``optax.losses.huber_loss`` (which broadcasts targets of another
  shape; jaxloss raises) and ``torch.nn.functional.huber_loss``.

  >>> import jax.numpy as jnp, jaxloss
  >>> jaxloss.huber_loss(jnp.array([0.5, 3.0]), jnp.array([0.0, 0.0]))
  Array([0.125, 2.5  ], dtype=float32)

  References:
    Huber, `Robust Estimation of a Location Parameter
    <https://doi.org/10.1214/aoms/1177703732>`_, 1964.
  """
  checks.positive("delta", delta)
  values = _huber(_errors(predictions, targets), delta)
  return reduce(values, reduction, weights=weights, where=where)


@loss
def log_cosh(
  predictions: ArrayLike,
  targets: ArrayLike | None = None,
  *,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""Log-cosh loss: about :math:`a^2 / 2` near 0 and :math:`|a| - \log 2` far.

  .. math:: \ell = \log\cosh a = \operatorname{logaddexp}(a, -a) - \log 2,
            \qquad a = \hat y - y

  Args:
    predictions: ``[...]`` floating predictions :math:`\hat y`.
    targets: ``[...]`` targets :math:`y`, same shape, or ``None`` for zeros.
    where, weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``[...]`` elementwise loss; a scalar for ``"sum"``/``"mean"``.

  Matches ``optax.losses.log_cosh`` (which broadcasts targets of another
  shape; jaxloss raises).

  >>> import jax.numpy as jnp, jaxloss
  >>> jaxloss.log_cosh(jnp.array([0.0, 1.0, 100.0]))
  Array([ 0.       ,  0.4337808, 99.306854 ], dtype=float32)

  References:
    Chen, Tian, Zhao and Fung, `Log Hyperbolic Cosine Loss Improves
    Variational Auto-Encoder <https://openreview.net/pdf?id=rkglvsC9Ym>`_, 2019.
  """
  errors = _errors(predictions, targets)
  values = jnp.logaddexp(errors, -errors) - _LOG_2
  return reduce(values, reduction, weights=weights, where=where)


@loss
def absolute_error(
  predictions: ArrayLike,
  targets: ArrayLike,
  *,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""Absolute error (L1), elementwise.

  .. math:: \ell = |\hat y - y|

  Args:
    predictions: ``[...]`` floating predictions :math:`\hat y`.
    targets: ``[...]`` targets :math:`y`, same shape.
    where, weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``[...]`` elementwise loss; a scalar for ``"sum"``/``"mean"`` (the MAE).

  Matches ``torch.nn.functional.l1_loss``, gradient included: 0 at zero
  error (``sign(0)``; ``jnp.abs`` gives 1 there).

  >>> import jax.numpy as jnp, jaxloss
  >>> jaxloss.absolute_error(jnp.array([1.0, 2.0]), jnp.array([0.5, 4.0]))
  Array([0.5, 2. ], dtype=float32)

  References:
    Hastie, Tibshirani and Friedman, `The Elements of Statistical Learning
    <https://hastie.su.domains/ElemStatLearn/>`_, 2009.
  """
  values = numerics.safe_abs(_errors(predictions, targets))
  return reduce(values, reduction, weights=weights, where=where)


@loss
def smooth_l1_loss(
  predictions: ArrayLike,
  targets: ArrayLike,
  *,
  beta: ArrayLike = 1.0,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""Smooth L1 loss: quadratic below ``beta``, linear above.

  .. math::
    \ell(a) = \begin{cases} \tfrac12 a^2 / \beta & |a| < \beta \\
              |a| - \tfrac12 \beta & |a| \ge \beta \end{cases},
    \qquad a = \hat y - y

  ``beta = 0`` gives the L1 loss :math:`|a|` (also for a traced ``beta``);
  the gradient at zero error is 0, as in torch, for every ``beta``.

  Args:
    predictions: ``[...]`` floating predictions :math:`\hat y`.
    targets: ``[...]`` targets :math:`y`, same shape.
    beta: the threshold :math:`\beta \ge 0` (may be traced).
    where, weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``[...]`` elementwise loss; a scalar for ``"sum"``/``"mean"``.

  Matches ``torch.nn.functional.smooth_l1_loss``.

  >>> import jax.numpy as jnp, jaxloss
  >>> jaxloss.smooth_l1_loss(jnp.array([0.5, 3.0]), jnp.array([0.0, 0.0]))
  Array([0.125, 2.5  ], dtype=float32)

  References:
    Girshick, `Fast R-CNN <https://arxiv.org/abs/1504.08083>`_, 2015.
  """
  checks.nonnegative("beta", beta)
  predictions, targets = pair(predictions, targets)
  # huber(a, β) / β, written so that β = 0 gives |a| with finite gradients.
  abs_errors = numerics.safe_abs(predictions - targets)
  quadratic = jnp.minimum(abs_errors, beta)
  values = (
    numerics.safe_divide(0.5 * jnp.square(quadratic), jnp.asarray(beta))
    + abs_errors
    - quadratic
  )
  return reduce(values, reduction, weights=weights, where=where)


@loss
def asymmetric_huber_loss(
  predictions: ArrayLike,
  targets: ArrayLike,
  *,
  delta: ArrayLike = 1.0,
  alpha: ArrayLike = 1.0,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""Huber loss whose linear branch for under-predictions has slope αδ.

  .. math::
    \ell(a) = \begin{cases} \tfrac12 a^2 & |a| \le \delta \\
              \delta\,(|a| - \tfrac12 \delta) & a > \delta \\
              \alpha\,\delta\,(|a| - \tfrac12 \delta) & a < -\delta
              \end{cases}, \qquad a = \hat y - y

  As defined (the jaxloss catalogue), the loss jumps by
  :math:`\tfrac12 (\alpha - 1) \delta^2` at :math:`a = -\delta` when
  :math:`\alpha \ne 1`; ``alpha = 1`` is :func:`huber_loss`.

  Args:
    predictions: ``[...]`` floating predictions :math:`\hat y`.
    targets: ``[...]`` targets :math:`y`, same shape.
    delta: the threshold :math:`\delta > 0` (may be traced).
    alpha: the scale :math:`\alpha \ge 0` of the branch :math:`a < -\delta`.
    where, weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``[...]`` elementwise loss; a scalar for ``"sum"``/``"mean"``.

  No reference implementation: the formula above is the specification.

  >>> import jax.numpy as jnp, jaxloss
  >>> jaxloss.asymmetric_huber_loss(jnp.array([3.0, -3.0, 0.5]),
  ...                               jnp.zeros(3), alpha=2.0)
  Array([2.5  , 5.   , 0.125], dtype=float32)

  References:
    Huber, `Robust Estimation of a Location Parameter
    <https://doi.org/10.1214/aoms/1177703732>`_, 1964.
  """
  checks.positive("delta", delta)
  checks.nonnegative("alpha", alpha)
  predictions, targets = pair(predictions, targets)
  errors = predictions - targets
  values = jnp.where(errors < -jnp.asarray(delta), alpha, 1) * _huber(
    errors, delta
  )
  return reduce(values, reduction, weights=weights, where=where)


@loss
def lp_loss(
  predictions: ArrayLike,
  targets: ArrayLike | None = None,
  *,
  p: ArrayLike,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""The p-th power of the absolute error, elementwise (L_p).

  .. math:: \ell = |\hat y - y|^p

  ``p = 1`` is :func:`absolute_error` and ``p = 2`` :func:`squared_error`
  (values and gradients); ``"mean"`` is the mean p-th power error. At zero
  error the gradient is 0 for every ``p`` (for ``p < 1`` the derivative is
  unbounded there; 0 is the library's convention, as ``sign(0)`` for L1).

  Args:
    predictions: ``[...]`` floating predictions :math:`\hat y`.
    targets: ``[...]`` targets :math:`y`, same shape, or ``None`` for zeros.
    p: the exponent ``p > 0`` (may be traced).
    where, weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``[...]`` elementwise loss; a scalar for ``"sum"``/``"mean"``.

  Matches ``numpy.abs(predictions - targets) ** p``.

  >>> import jax.numpy as jnp, jaxloss
  >>> jaxloss.lp_loss(jnp.array([1.0, 2.0]), jnp.array([0.0, 4.0]), p=3)
  Array([1., 8.], dtype=float32)

  References:
    Hastie, Tibshirani and Friedman, `The Elements of Statistical Learning
    <https://hastie.su.domains/ElemStatLearn/>`_, 2009.
  """
  checks.positive("p", p)
  errors = _errors(predictions, targets)
  values = numerics.safe_pow(
    numerics.safe_abs(errors), numerics.like(p, errors.dtype)
  )
  return reduce(values, reduction, weights=weights, where=where)
