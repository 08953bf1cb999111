"""Regression losses: pointwise errors, robust losses, cosines, embeddings.

Every loss returns per-example values and reduces through
:func:`jaxloss.reduce`. Names shared with ``optax.losses`` keep optax's
positional signature, defaults and values. Predictions and targets must have
the same shape (never broadcast); targets may be float, int or bool and are
cast to the predictions' dtype. Re-exported here: the metrics (RMSE,
normalised MAE, percentage and log errors) from
:mod:`jaxloss._regression_metrics`, and the probabilistic losses (Poisson,
Gaussian, quantile) from :mod:`jaxloss._regression_probabilistic`.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from jaxloss import _regression_metrics, _regression_probabilistic
from jaxloss._core import checks, numerics, value_checks
from jaxloss._core import reduction as reduction_lib
from jaxloss._regression_metrics import *  # noqa: F403
from jaxloss._regression_metrics import _pair, _reduced
from jaxloss._regression_probabilistic import *  # noqa: F403

_LOG_2 = math.log(2.0)
_TORCH_COSINE_EPS = 1e-12  # torch's cosine_embedding_loss adds it to ‖x‖².


def _errors(name: str, predictions, targets) -> jax.Array:
  """``predictions - targets``, or ``predictions`` when ``targets is None``."""
  if targets is None:
    return checks.as_float(name, "predictions", predictions)
  predictions, targets = _pair(name, predictions, targets)
  return predictions - targets


def _huber(errors: jax.Array, delta) -> jax.Array:
  """``½ min(|e|, δ)² + δ (|e| − min(|e|, δ))``, optax's form of Huber."""
  abs_errors = jnp.abs(errors)
  quadratic = jnp.minimum(abs_errors, delta)
  return 0.5 * jnp.square(quadratic) + delta * (abs_errors - quadratic)


def _cosine_sums(name: str, a: jax.Array, b: jax.Array, axis, where):
  """``(a·b, ‖a‖², ‖b‖², example mask)`` over ``axis``, masked by ``where``."""
  axes, elements, examples = _reduced(name, a, axis, where)
  if elements is not None:
    a, b = jnp.where(elements, a, 0), jnp.where(elements, b, 0)
  sums = tuple(jnp.sum(x * y, axis=axes) for x, y in ((a, b), (a, a), (b, b)))
  return sums + (examples,)


def _inverse_sqrt(x: jax.Array) -> jax.Array:
  """``1 / sqrt(x)`` for ``x > 0``; 0, with gradient 0, at ``x = 0``."""
  positive = x > 0
  return jnp.where(positive, jax.lax.rsqrt(jnp.where(positive, x, 1)), 0)


def _optax_cosine(name, predictions, targets, epsilon, axis, where):
  """optax's cosine similarity (squared norms floored at ``epsilon``), 0 for a
  zero vector instead of NaN; and the example mask."""
  predictions, targets = checks.same_shape_floats(
    name, predictions=predictions, targets=targets
  )
  checks.nonnegative(name, "epsilon", epsilon)
  dot, norm_p, norm_t, examples = _cosine_sums(
    name, predictions, targets, axis, where
  )
  return dot * (
    _inverse_sqrt(jnp.maximum(norm_p, epsilon))
    * _inverse_sqrt(jnp.maximum(norm_t, epsilon))
  ), examples


def squared_error(
  predictions, targets=None, *, where=None, weights=None, reduction="none"
):
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
  name = "squared_error"
  values = jnp.square(_errors(name, predictions, targets))
  return reduction_lib.reduce(
    values, reduction, weights=weights, where=where, name=name
  )


def l2_loss(
  predictions, targets=None, *, where=None, weights=None, reduction="none"
):
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
  name = "l2_loss"
  values = 0.5 * jnp.square(_errors(name, predictions, targets))
  return reduction_lib.reduce(
    values, reduction, weights=weights, where=where, name=name
  )


def huber_loss(
  predictions,
  targets=None,
  *,
  delta=1.0,
  where=None,
  weights=None,
  reduction="none",
):
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
  name = "huber_loss"
  checks.positive(name, "delta", delta)
  values = _huber(_errors(name, predictions, targets), delta)
  return reduction_lib.reduce(
    values, reduction, weights=weights, where=where, name=name
  )


def log_cosh(
  predictions, targets=None, *, where=None, weights=None, reduction="none"
):
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
  name = "log_cosh"
  errors = _errors(name, predictions, targets)
  values = jnp.logaddexp(errors, -errors) - _LOG_2
  return reduction_lib.reduce(
    values, reduction, weights=weights, where=where, name=name
  )


def cosine_similarity(
  predictions,
  targets,
  *,
  epsilon=0.0,
  axis=-1,
  where=None,
  weights=None,
  reduction="none",
):
  r"""Cosine of the angle between predictions and targets.

  .. math:: \ell = \hat y \cdot y \,\big/ \sqrt{\max(\|\hat y\|^2, \epsilon)
            \max(\|y\|^2, \epsilon)}

  Args:
    predictions: ``[..., dim]`` floating vectors.
    targets: ``[..., dim]`` floating vectors, same shape.
    epsilon: floor of each squared norm (optax's ``epsilon``), >= 0.
    axis: the vector axis: an int, a tuple of ints, or ``None`` for all axes.
    where: boolean mask of the input's shape (drops elements of ``axis``, as
      in optax) or of at most the per-example rank (drops examples).
    weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``[...]`` per-example similarities (``axis`` removed); a scalar for
    ``"sum"``/``"mean"``.

  Matches ``optax.losses.cosine_similarity``, except that a zero vector gives
  0 with gradient 0 (optax: NaN), and a mask of lower rank drops examples
  (optax broadcasts it against the input from the right).

  >>> import jax.numpy as jnp, jaxloss
  >>> jaxloss.cosine_similarity(jnp.array([[1.0, 0.0], [1.0, 0.0]]),
  ...                           jnp.array([[0.0, 2.0], [-3.0, 0.0]]))
  Array([ 0., -1.], dtype=float32)

  References:
    Wikipedia contributors, `Cosine similarity
    <https://en.wikipedia.org/wiki/Cosine_similarity>`_, 2024.
  """
  name = "cosine_similarity"
  values, examples = _optax_cosine(
    name, predictions, targets, epsilon, axis, where
  )
  return reduction_lib.reduce(
    values, reduction, weights=weights, where=examples, name=name
  )


def cosine_distance(
  predictions,
  targets,
  *,
  epsilon=0.0,
  axis=-1,
  where=None,
  weights=None,
  reduction="none",
):
  r"""One minus the cosine similarity of predictions and targets.

  .. math:: \ell = 1 - \cos(\hat y, y)

  Args:
    predictions: ``[..., dim]`` floating vectors.
    targets: ``[..., dim]`` floating vectors, same shape.
    epsilon: floor of each squared norm (optax's ``epsilon``), >= 0.
    axis: the vector axis: an int, a tuple of ints, or ``None`` for all axes.
    where: boolean mask of the input's shape (drops elements of ``axis``, as
      in optax) or of at most the per-example rank (drops examples).
    weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``[...]`` per-example distances (``axis`` removed); a scalar for
    ``"sum"``/``"mean"``.

  Matches ``optax.losses.cosine_distance``, with the differences of
  :func:`cosine_similarity`: a zero vector has distance 1 (optax: NaN), and
  an example with every element masked has value 0 (optax: 1).

  >>> import jax.numpy as jnp, jaxloss
  >>> jaxloss.cosine_distance(jnp.array([[1.0, 0.0], [1.0, 0.0]]),
  ...                         jnp.array([[0.0, 2.0], [-3.0, 0.0]]))
  Array([1., 2.], dtype=float32)

  References:
    Wikipedia contributors, `Cosine distance
    <https://en.wikipedia.org/wiki/Cosine_similarity#Cosine_distance>`_, 2024.
  """
  name = "cosine_distance"
  cosines, examples = _optax_cosine(
    name, predictions, targets, epsilon, axis, where
  )
  return reduction_lib.reduce(
    1 - cosines, reduction, weights=weights, where=examples, name=name
  )


def absolute_error(
  predictions, targets, *, where=None, weights=None, reduction="none"
):
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
  name = "absolute_error"
  values = numerics.safe_abs(_errors(name, predictions, targets))
  return reduction_lib.reduce(
    values, reduction, weights=weights, where=where, name=name
  )


def smooth_l1_loss(
  predictions, targets, *, beta=1.0, where=None, weights=None, reduction="none"
):
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
  name = "smooth_l1_loss"
  checks.nonnegative(name, "beta", beta)
  predictions, targets = _pair(name, predictions, targets)
  # huber(a, β) / β, written so that β = 0 gives |a| with finite gradients.
  abs_errors = numerics.safe_abs(predictions - targets)
  quadratic = jnp.minimum(abs_errors, beta)
  values = (
    numerics.safe_divide(0.5 * jnp.square(quadratic), beta)
    + abs_errors
    - quadratic
  )
  return reduction_lib.reduce(
    values, reduction, weights=weights, where=where, name=name
  )


def asymmetric_huber_loss(
  predictions,
  targets,
  *,
  delta=1.0,
  alpha=1.0,
  where=None,
  weights=None,
  reduction="none",
):
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
  name = "asymmetric_huber_loss"
  checks.positive(name, "delta", delta)
  checks.nonnegative(name, "alpha", alpha)
  predictions, targets = _pair(name, predictions, targets)
  errors = predictions - targets
  values = jnp.where(errors < -delta, alpha, 1) * _huber(errors, delta)
  return reduction_lib.reduce(
    values, reduction, weights=weights, where=where, name=name
  )


@value_checks.value_rules(targets=value_checks.signs)
def cosine_embedding_loss(
  x1, x2, targets, *, margin=0.0, where=None, weights=None, reduction="none"
):
  r"""Cosine embedding loss: pulls pairs with target 1 together, −1 apart.

  .. math::
    \ell = \begin{cases} 1 - c & t = 1 \\ \max(0, c - m) & t = -1 \end{cases},
    \quad c = \frac{x_1 \cdot x_2}
      {\sqrt{(\|x_1\|^2 + 10^{-12})(\|x_2\|^2 + 10^{-12})}}

  The :math:`10^{-12}` is torch's: a zero vector has cosine 0 and finite
  gradients. A target other than ±1 gives 0, as in torch.

  Args:
    x1: ``[..., dim]`` floating embeddings.
    x2: ``[..., dim]`` floating embeddings, same shape.
    targets: ``[...]`` 1 (similar) or −1 (dissimilar), int or float.
    margin: :math:`m \in [-1, 1]` (may be traced).
    where: boolean mask of the embeddings' shape (drops features) or of at
      most the targets' rank (drops pairs).
    weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``[...]`` per-pair loss; a scalar for ``"sum"``/``"mean"``.

  Matches ``torch.nn.functional.cosine_embedding_loss``.

  >>> import jax.numpy as jnp, jaxloss
  >>> x1 = jnp.array([[1.0, 0.0], [1.0, 0.0]])
  >>> x2 = jnp.array([[0.0, 2.0], [3.0, 0.0]])
  >>> jaxloss.cosine_embedding_loss(x1, x2, jnp.array([1, -1]), margin=0.5)
  Array([1. , 0.5], dtype=float32)

  References:
    PyTorch contributors, `torch.nn.CosineEmbeddingLoss
    <https://pytorch.org/docs/stable/generated/torch.nn.CosineEmbeddingLoss.html>`_,
    2024.
  """
  name = "cosine_embedding_loss"
  x1, x2 = checks.same_shape_floats(name, x1=x1, x2=x2)
  if isinstance(margin, (int, float)) and not -1 <= margin <= 1:
    raise ValueError(f"{name}: `margin` must lie in [-1, 1], got {margin}.")
  dot, norm1, norm2, examples = _cosine_sums(name, x1, x2, -1, where)
  targets = checks.as_targets(name, "targets", targets, x1)
  checks.shape(
    name,
    "targets",
    targets,
    x1.shape[:-1],
    "the shape of `x1` without its last axis",
  )
  cosines = dot / jnp.sqrt(
    (norm1 + _TORCH_COSINE_EPS) * (norm2 + _TORCH_COSINE_EPS)
  )
  values = jnp.where(targets == 1, 1 - cosines, 0) + jnp.where(
    targets == -1, jnp.maximum(cosines - margin, 0), 0
  )
  return reduction_lib.reduce(
    values, reduction, weights=weights, where=examples, name=name
  )


@value_checks.value_rules(targets=value_checks.signs)
def hinge_embedding_loss(
  inputs, targets, *, margin=1.0, where=None, weights=None, reduction="none"
):
  r"""Hinge embedding loss on distances: ``x`` for target 1, hinge for −1.

  .. math::
    \ell = \begin{cases} x & t = 1 \\ \max(0, m - x) & t = -1 \end{cases}

  As in torch, a target that is neither 1 nor −1 gets both terms.

  Args:
    inputs: ``[...]`` floating inputs :math:`x` (typically distances).
    targets: ``[...]`` 1 or −1, same shape, int or float.
    margin: :math:`m \ge 0` (may be traced).
    where, weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``[...]`` elementwise loss; a scalar for ``"sum"``/``"mean"``.

  Matches ``torch.nn.functional.hinge_embedding_loss``.

  >>> import jax.numpy as jnp, jaxloss
  >>> jaxloss.hinge_embedding_loss(jnp.array([0.5, 0.25, 2.0]),
  ...                              jnp.array([1, -1, -1]))
  Array([0.5 , 0.75, 0.  ], dtype=float32)

  References:
    Hadsell, Chopra and LeCun, `Dimensionality Reduction by Learning an
    Invariant Mapping <https://doi.org/10.1109/CVPR.2006.100>`_, 2006.
  """
  name = "hinge_embedding_loss"
  checks.nonnegative(name, "margin", margin)
  inputs, targets = _pair(name, inputs, targets, arg="inputs")
  values = jnp.where(
    targets != 1, jnp.maximum(margin - inputs, 0), 0
  ) + jnp.where(targets != -1, inputs, 0)
  return reduction_lib.reduce(
    values, reduction, weights=weights, where=where, name=name
  )


__all__ = (
  _regression_metrics.__all__
  + _regression_probabilistic.__all__
  + [
    "absolute_error",
    "asymmetric_huber_loss",
    "cosine_distance",
    "cosine_embedding_loss",
    "cosine_similarity",
    "hinge_embedding_loss",
    "huber_loss",
    "l2_loss",
    "log_cosh",
    "smooth_l1_loss",
    "squared_error",
  ]
)
