"""Probabilistic regression losses: Poisson and Gaussian NLL, quantile loss."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxloss._core import checks, value_checks
from jaxloss._core.loss import loss
from jaxloss._core.reduction import Reduction, reduce
from jaxloss.regression._inputs import pair

__all__ = ["gaussian_nll_loss", "poisson_nll_loss", "quantile_loss"]

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)
_FLAGS = (True, False)


def _rates(args: dict, arg: str) -> tuple[jax.Array, str]:
  """Value rule: with ``log_input=False`` the inputs are rates, >= 0."""
  if args.get("log_input", True):
    return jnp.array(True), ""
  return value_checks.nonnegative(args, arg)


def _stirling(targets: jax.Array) -> jax.Array:
  """torch's Stirling term ``t log t − t + ½ log(2πt)`` where ``t > 1``; 0
  elsewhere."""
  large = targets > 1
  t = jnp.where(large, targets, 1)
  return jnp.where(
    large, t * jnp.log(t) - t + 0.5 * jnp.log(t) + _HALF_LOG_2PI, 0
  )


@loss(inputs=_rates, targets=value_checks.nonnegative)
def poisson_nll_loss(
  inputs: ArrayLike,
  targets: ArrayLike,
  *,
  log_input: bool = True,
  full: bool = False,
  eps: ArrayLike = 1e-8,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""Poisson negative log-likelihood of counts, elementwise.

  .. math::
    \ell = \begin{cases} e^{x} - t\,x & \texttt{log\_input} \\
           x - t \log(x + \varepsilon) & \text{otherwise} \end{cases}
    \; + \; \big[t > 1\big]\,\big(t \log t - t + \tfrac12 \log(2 \pi t)\big)
    \ \text{if } \texttt{full}

  The constant :math:`\log t!` is left out, except for the Stirling
  approximation that ``full=True`` adds for targets above 1 (as torch does).
  With ``log_input=True`` a large log-rate overflows ``exp`` to inf, as in
  torch.

  Args:
    inputs: ``[...]`` floating log-rates :math:`x` (``log_input=True``) or
      rates :math:`x \ge 0` (``log_input=False``).
    targets: ``[...]`` counts :math:`t \ge 0`, same shape (int or float).
    log_input: whether ``inputs`` are log-rates (a Python bool).
    full: whether to add the Stirling term (a Python bool).
    eps: :math:`\varepsilon > 0` inside the log when ``log_input=False``.
    where, weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``[...]`` elementwise loss, or a scalar for ``"sum"``/``"mean"``.

  Matches ``torch.nn.functional.poisson_nll_loss`` (whose default reduction
  is ``"mean"``).

  >>> import jax.numpy as jnp, jaxloss
  >>> jaxloss.poisson_nll_loss(jnp.array([0.0, 1.0]), jnp.array([0.0, 3.0]))
  Array([ 1.        , -0.28171825], dtype=float32)

  References:
    PyTorch contributors, `torch.nn.PoissonNLLLoss
    <https://pytorch.org/docs/stable/generated/torch.nn.PoissonNLLLoss.html>`_,
    2024.
  """
  checks.option("log_input", log_input, _FLAGS)
  checks.option("full", full, _FLAGS)
  checks.positive("eps", eps)
  inputs, targets = pair(inputs, targets, arg="inputs")
  if log_input:
    values = jnp.exp(inputs) - targets * inputs
  else:
    values = inputs - targets * jnp.log(inputs + eps)
  if full:
    values = values + _stirling(targets)
  return reduce(values, reduction, weights=weights, where=where)


def _variances_like(variances: jax.Array, means: jax.Array) -> jax.Array:
  """torch's variance shapes, broadcast to ``means``' shape: ``means``' shape
  without its last axis (one variance per vector: a last axis of 1 is added
  first, as torch does), or any shape that broadcasts against ``means`` to
  ``means``' shape (``[..., 1]``, ``[1, dim]``, ``[dim]``, …)."""
  if variances.shape == means.shape:
    return variances
  if means.ndim and variances.shape == means.shape[:-1]:
    variances = variances[..., None]
  try:
    broadcast = np.broadcast_shapes(variances.shape, means.shape)
  except ValueError:
    broadcast = None
  if broadcast == means.shape:
    return jnp.broadcast_to(variances, means.shape)
  raise checks.fail(
    f"argument `variances` must have the shape of `means` {means.shape}, "
    f"that shape without its last axis, or a shape that broadcasts to it "
    f"(torch's rule); got {variances.shape}."
  )


@jax.custom_jvp
def _squared_ratio(errors: jax.Array, variances: jax.Array) -> jax.Array:
  """``errors² / variances`` computed as ``(errors / variances)·errors``, with
  the derivatives ``2r`` and ``−r²`` (``r = errors / variances``): neither
  ``errors²`` (inf at 1e20 in float32) nor ``variances²`` (in JAX's
  quotient rule) is formed, so the value and gradient stay finite wherever
  they are representable."""
  return (errors / variances) * errors


@_squared_ratio.defjvp
def _squared_ratio_jvp(primals, tangents):
  errors, variances = primals
  d_errors, d_variances = tangents
  ratio = errors / variances
  return ratio * errors, 2 * ratio * d_errors - jnp.square(ratio) * d_variances


def _clamp_straight_through(x: jax.Array, floor: ArrayLike) -> jax.Array:
  """``max(x, floor)`` in value, with the gradient of ``x`` (torch's in-place
  clamp under ``no_grad``)."""
  return (
    x - jax.lax.stop_gradient(x) + jax.lax.stop_gradient(jnp.maximum(x, floor))
  )


@loss(variances=value_checks.positive)
def gaussian_nll_loss(
  means: ArrayLike,
  targets: ArrayLike,
  variances: ArrayLike,
  *,
  full: bool = False,
  eps: ArrayLike = 1e-6,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""Gaussian negative log-likelihood with predicted variances, elementwise.

  .. math::
    \ell = \tfrac12 \Big(\log \max(\sigma^2, \varepsilon)
           + \frac{(\mu - y)^2}{\max(\sigma^2, \varepsilon)}\Big)
           \; + \; \tfrac12 \log 2\pi \ \text{if } \texttt{full}

  Follows torch's quirk: the clamp at :math:`\varepsilon` is applied without
  recording it, so below :math:`\varepsilon` the gradient with respect to the
  variance is that of the loss at :math:`\varepsilon` passed straight through
  (not 0), and a variance under :math:`\varepsilon` is still pushed up.
  Negative variances are clamped too (torch raises; use
  :func:`jaxloss.checked`, which requires positive variances).

  Args:
    means: ``[..., dim]`` floating predicted means :math:`\mu`.
    targets: ``[..., dim]`` targets :math:`y`, same shape (never broadcast).
    variances: predicted variances :math:`\sigma^2`: ``[..., dim]``,
      ``[...]`` (one variance per vector: a last axis of 1 is added first), or
      any shape that broadcasts to ``means``' shape (``[..., 1]``,
      ``[1, dim]``, …), as torch broadcasts them.
    full: whether to add the constant :math:`\tfrac12 \log 2\pi` (a Python
      bool).
    eps: the variance floor :math:`\varepsilon > 0`.
    where, weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``[..., dim]`` elementwise loss (``means``' shape), or a scalar for
    ``"sum"``/``"mean"``.

  Matches ``torch.nn.functional.gaussian_nll_loss`` (whose default reduction
  is ``"mean"``), gradients included.

  >>> import jax.numpy as jnp, jaxloss
  >>> means, targets = jnp.array([[0.0, 1.0]]), jnp.array([[1.0, 1.0]])
  >>> jaxloss.gaussian_nll_loss(means, targets, jnp.array([1.0]))
  Array([[0.5, 0. ]], dtype=float32)

  References:
    Nix and Weigend, `Estimating the mean and variance of the target
    probability distribution <https://doi.org/10.1109/ICNN.1994.374138>`_, 1994.
  """
  checks.option("full", full, _FLAGS)
  checks.positive("eps", eps)
  means, variances = checks.floats(means=means, variances=variances)
  targets = checks.as_targets("targets", targets, means)
  checks.same_shape(means=means, targets=targets)
  variances = _clamp_straight_through(_variances_like(variances, means), eps)
  values = 0.5 * (
    jnp.log(variances) + _squared_ratio(means - targets, variances)
  )
  if full:
    values = values + _HALF_LOG_2PI
  return reduce(values, reduction, weights=weights, where=where)


def _quantile_array(quantiles: ArrayLike, predictions: jax.Array) -> jax.Array:
  """Quantiles checked (static values in [0, 1]; a scalar or a vector matching
  the last axis of ``predictions``), in the predictions' dtype."""
  if not isinstance(quantiles, jax.Array):
    for q in np.ravel(np.asarray(quantiles, dtype=np.float64)):
      checks.in_unit_interval("quantiles", float(q))
  quantiles = checks.as_float("quantiles", quantiles)
  if quantiles.ndim == 1 and predictions.ndim >= 1:
    checks.shape(
      "quantiles",
      quantiles,
      (predictions.shape[-1],),
      "one quantile per entry of the last axis of `predictions`",
    )
  elif quantiles.ndim != 0:
    raise checks.fail(
      f"argument `quantiles` must be a scalar or a vector matching the last "
      f"axis of `predictions` {predictions.shape}, got shape "
      f"{quantiles.shape}."
    )
  return quantiles.astype(predictions.dtype)


@loss(quantiles=value_checks.unit_interval)
def quantile_loss(
  predictions: ArrayLike,
  targets: ArrayLike,
  *,
  quantiles: ArrayLike = 0.5,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""Quantile (pinball) loss, elementwise.

  .. math::
    \ell = \max\big(q\,(y - \hat y),\ (q - 1)\,(y - \hat y)\big)

  Args:
    predictions: ``[...]`` predicted quantiles :math:`\hat y`; with a vector
      of quantiles, ``[..., num_quantiles]``.
    targets: targets :math:`y` of the predictions' shape; with a vector of
      quantiles, also ``[...]``, the predictions' shape without the last axis
      (one target for every quantile).
    quantiles: :math:`q \in [0, 1]`, a scalar or a ``[num_quantiles]`` vector
      matching the last axis of ``predictions`` (may be traced).
    where, weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    The predictions' shape, or a scalar for ``"sum"``/``"mean"``.

  The pinball loss of Koenker and Bassett (``quantiles=0.5`` is half the
  absolute error); ``pytorch_forecasting.metrics.QuantileLoss`` is twice it.
  With a scalar quantile and ``"mean"``, matches
  ``sklearn.metrics.mean_pinball_loss(targets, predictions, alpha=q)``.

  >>> import jax.numpy as jnp, jaxloss
  >>> jaxloss.quantile_loss(jnp.array([[1.0, 2.0, 3.0]]), jnp.array([2.0]),
  ...                       quantiles=[0.25, 0.5, 0.75])
  Array([[0.25, 0.  , 0.25]], dtype=float32)

  References:
    Koenker and Bassett, `Regression Quantiles
    <https://doi.org/10.2307/1913643>`_, 1978.
  """
  predictions = checks.as_float("predictions", predictions)
  quantiles = _quantile_array(quantiles, predictions)
  targets = checks.as_targets("targets", targets, predictions)
  if quantiles.ndim == 1 and targets.shape == predictions.shape[:-1]:
    targets = jnp.broadcast_to(targets[..., None], predictions.shape)
  checks.same_shape(predictions=predictions, targets=targets)
  errors = targets - predictions
  quantiles = jnp.broadcast_to(quantiles, errors.shape)
  values = errors * jnp.where(errors >= 0, quantiles, quantiles - 1)
  return reduce(values, reduction, weights=weights, where=where)
