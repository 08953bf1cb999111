"""Regression metrics as losses: RMSE, normalised MAE, percentage and log
errors."""

from __future__ import annotations

from typing import Literal

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss._core import checks, numerics, value_checks
from jaxloss._core.loss import loss
from jaxloss._core.reduction import Reduction, reduce
from jaxloss.regression._inputs import Axis, pair, reduced_axes

__all__ = [
  "absolute_percentage_error",
  "normalized_mean_absolute_error",
  "root_mean_squared_error",
  "squared_log_error",
]

# sklearn's MAPE floor, numpy.finfo(numpy.float64).eps = 2**-52, is a power of
# two: exact in float32 too.
_PERCENTAGE_EPS = 2.0**-52
_NORMALIZERS = ("range", "mean")


@jax.custom_jvp
def _ratio(numerator: jax.Array, denominator: jax.Array) -> jax.Array:
  """``numerator / denominator`` (``denominator`` nonzero) whose derivative
  is ``(dn − ratio·dd) / d``: JAX's quotient rule computes ``n·d⁻²``, and
  ``d²`` overflows float32 for ``|d| ≳ 1.8e19`` (the gradient was then 0)."""
  return numerator / denominator


@_ratio.defjvp
def _ratio_jvp(primals, tangents):
  numerator, denominator = primals
  d_numerator, d_denominator = tangents
  ratio = numerator / denominator
  return ratio, (d_numerator - ratio * d_denominator) / denominator


def _masked_range(
  x: jax.Array, axes: tuple[int, ...], elements: jax.Array | None
) -> jax.Array:
  """``max − min`` over ``axes`` of the unmasked elements (0 if none)."""
  if elements is not None:  # Masked entries take the unmasked mean: in range.
    inside = jax.lax.stop_gradient(
      numerics.masked_mean(x, elements, axes, True)
    )
    x = jnp.where(elements, x, inside)
  return jnp.max(x, axis=axes) - jnp.min(x, axis=axes)


@loss
def root_mean_squared_error(
  predictions: ArrayLike,
  targets: ArrayLike,
  *,
  axis: Axis = None,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""Root mean squared error over ``axis`` (by default, over everything).

  .. math::
    \ell = \sqrt{\tfrac1{|A|} \textstyle\sum_{i \in A} (\hat y_i - y_i)^2}

  An aggregate metric: the mean runs over the axes :math:`A` and the root is
  taken per example. With ``axis=None`` (the default) :math:`A` is every axis:
  the result is one scalar, the RMSE of the batch, and ``reduction`` has
  nothing left to reduce. With ``axis=-1`` on ``[batch, dim]`` inputs there is
  one RMSE per example, which ``"mean"`` averages. Zero error gives 0 with a
  zero (not NaN) gradient.

  Args:
    predictions: ``[...]`` floating predictions :math:`\hat y`.
    targets: ``[...]`` targets :math:`y`, same shape.
    axis: an int, a tuple of ints, or ``None`` for all axes.
    where: boolean mask of the input's shape (drops elements from the mean)
      or of at most the per-example rank (drops examples).
    weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    The input's shape without ``axis`` (a scalar for ``axis=None``); a
    scalar for ``"sum"``/``"mean"``.

  Matches ``sklearn.metrics.root_mean_squared_error`` on 1-D inputs with
  ``axis=None``.

  >>> import jax.numpy as jnp, jaxloss
  >>> p = jnp.array([[1.0, 2.0], [3.0, 3.0]])
  >>> t = jnp.array([[1.0, 4.0], [3.0, 3.0]])
  >>> jaxloss.root_mean_squared_error(p, t)
  Array(1., dtype=float32)
  >>> jaxloss.root_mean_squared_error(p, t, axis=-1)
  Array([1.4142135, 0.       ], dtype=float32)

  References:
    Hyndman and Koehler, `Another look at measures of forecast accuracy
    <https://doi.org/10.1016/j.ijforecast.2006.03.001>`_, 2006.
  """
  predictions, targets = pair(predictions, targets)
  axes, elements, examples = reduced_axes(predictions, axis, where)
  errors = predictions - targets
  # Divided by the largest |error| first (no gradient: the RMSE is
  # homogeneous of degree 1), so that squares of 1e19..1e30 do not overflow.
  magnitudes = jnp.abs(errors)
  if elements is not None:
    magnitudes = jnp.where(elements, magnitudes, 0)
  peak = jnp.max(magnitudes, axis=axes, keepdims=True)
  peak = jax.lax.stop_gradient(jnp.where(peak > 0, peak, 1))
  mean_square = numerics.masked_mean(jnp.square(errors / peak), elements, axes)
  values = numerics.safe_sqrt(mean_square) * jnp.squeeze(peak, axes)
  return reduce(values, reduction, weights=weights, where=examples)


@loss
def normalized_mean_absolute_error(
  predictions: ArrayLike,
  targets: ArrayLike,
  *,
  normalizer: Literal["range", "mean"] = "range",
  axis: Axis = None,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""Mean absolute error over ``axis``, divided by the targets' range or mean.

  .. math::
    \ell = \frac{\tfrac1{|A|} \sum_{i \in A} |\hat y_i - y_i|}{s}, \quad
    s = \max_A y - \min_A y \ (\texttt{"range"}) \ \text{or}\
    \Big|\tfrac1{|A|} \textstyle\sum_{i \in A} y_i\Big| \ (\texttt{"mean"})

  An aggregate metric with the axes of :func:`root_mean_squared_error`: one
  scalar by default, or with ``axis=-1`` one value per example, each
  normalised by its own targets. Where :math:`s = 0` (constant targets for
  ``"range"``, targets of mean 0 for ``"mean"``) it is replaced by 1: the
  value is then the plain mean absolute error, finite with finite gradients.

  Args:
    predictions: ``[...]`` floating predictions :math:`\hat y`.
    targets: ``[...]`` targets :math:`y`, same shape.
    normalizer: ``"range"`` or ``"mean"``.
    axis: an int, a tuple of ints, or ``None`` for all axes.
    where: boolean mask of the input's shape (drops elements from the mean
      and the normaliser) or of at most the per-example rank (drops examples).
    weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    The input's shape without ``axis`` (a scalar for ``axis=None``); a
    scalar for ``"sum"``/``"mean"``.

  No reference implementation; the normalisers are those of torchmetrics'
  ``NormalizedRootMeanSquaredError`` (``"mean"`` takes the absolute value).

  >>> import jax.numpy as jnp, jaxloss
  >>> p, t = jnp.array([1.0, 2.0, 6.0]), jnp.array([0.0, 2.0, 4.0])
  >>> jaxloss.normalized_mean_absolute_error(p, t)
  Array(0.25, dtype=float32)
  >>> jaxloss.normalized_mean_absolute_error(p, t, normalizer="mean")
  Array(0.5, dtype=float32)

  References:
    Hyndman and Koehler, `Another look at measures of forecast accuracy
    <https://doi.org/10.1016/j.ijforecast.2006.03.001>`_, 2006.
  """
  checks.option("normalizer", normalizer, _NORMALIZERS)
  predictions, targets = pair(predictions, targets)
  axes, elements, examples = reduced_axes(predictions, axis, where)
  mae = numerics.masked_mean(
    numerics.safe_abs(predictions - targets), elements, axes
  )
  if normalizer == "range":
    scale = _masked_range(targets, axes, elements)
  else:
    scale = jnp.abs(numerics.masked_mean(targets, elements, axes))
  values = _ratio(mae, jnp.where(scale == 0, 1, scale))
  return reduce(values, reduction, weights=weights, where=examples)


@loss
def absolute_percentage_error(
  predictions: ArrayLike,
  targets: ArrayLike,
  *,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""Absolute percentage error (a fraction), elementwise.

  .. math:: \ell = |\hat y - y| \,/\, \max(|y|, \epsilon), \qquad
            \epsilon = 2^{-52}

  :math:`\epsilon` is sklearn's floor, float64's machine epsilon, in every
  dtype (a power of two, exact in float32): a target of 0 gives a huge but
  finite value, about :math:`4.5 \cdot 10^{15}\, |\hat y|`.

  Args:
    predictions: ``[...]`` floating predictions :math:`\hat y`.
    targets: ``[...]`` targets :math:`y`, same shape.
    where, weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``[...]`` elementwise loss; a scalar for ``"sum"``/``"mean"``.

  Matches ``sklearn.metrics.mean_absolute_percentage_error`` with
  ``reduction="mean"`` (a fraction, not multiplied by 100).

  >>> import jax.numpy as jnp, jaxloss
  >>> jaxloss.absolute_percentage_error(jnp.array([1.5, 2.0]),
  ...                                   jnp.array([1.0, -4.0]))
  Array([0.5, 1.5], dtype=float32)

  References:
    Hyndman and Koehler, `Another look at measures of forecast accuracy
    <https://doi.org/10.1016/j.ijforecast.2006.03.001>`_, 2006.
  """
  predictions, targets = pair(predictions, targets)
  values = _ratio(
    numerics.safe_abs(predictions - targets),
    jnp.maximum(jnp.abs(targets), _PERCENTAGE_EPS),
  )
  return reduce(values, reduction, weights=weights, where=where)


@loss(
  predictions=value_checks.greater_than(-1),
  targets=value_checks.greater_than(-1),
)
def squared_log_error(
  predictions: ArrayLike,
  targets: ArrayLike,
  *,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""Squared difference of ``log(1 + x)``, elementwise.

  .. math:: \ell = \big(\log(1 + \hat y) - \log(1 + y)\big)^2

  Defined for :math:`\hat y, y > -1`; outside, the value is NaN, and
  :func:`jaxloss.checked` names the offending argument (sklearn raises on
  values <= −1; older versions on any negative value).

  Args:
    predictions: ``[...]`` floating predictions :math:`\hat y > -1`.
    targets: ``[...]`` targets :math:`y > -1`, same shape.
    where, weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``[...]`` elementwise loss; a scalar for ``"sum"``/``"mean"``.

  Matches ``sklearn.metrics.mean_squared_log_error`` with
  ``reduction="mean"``.

  >>> import jax.numpy as jnp, jaxloss
  >>> jaxloss.squared_log_error(jnp.array([0.0, 3.0]), jnp.array([0.0, 0.0]))
  Array([0.      , 1.921812], dtype=float32)

  References:
    scikit-learn developers, `Mean squared logarithmic error
    <https://scikit-learn.org/stable/modules/model_evaluation.html#mean-squared-log-error>`_,
    scikit-learn user guide, 2024.
  """
  predictions, targets = pair(predictions, targets)
  values = jnp.square(jnp.log1p(predictions) - jnp.log1p(targets))
  return reduce(values, reduction, weights=weights, where=where)
