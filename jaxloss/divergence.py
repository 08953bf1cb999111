"""Divergences between distributions: Kullback-Leibler, Jensen-Shannon, and
the KL between diagonal Gaussians.

Every divergence sums over its distribution axis (or axes) and returns
per-example values that reduce through :func:`jaxloss.reduce`. Names shared
with ``optax.losses`` keep optax's positional signature, defaults and values.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss._core import checks, value_checks
from jaxloss._core.loss import loss
from jaxloss._core.reduction import Reduction, reduce, split_where

Axis = int | Sequence[int] | None
F = TypeVar("F", bound=Callable[..., Any])


def _deprecated(replacement: str) -> Callable[[F], F]:
  """Warns, as optax's ``warn_deprecated_function`` does, that the decorated
  name is deprecated in favour of ``replacement``: the same
  ``DeprecationWarning`` and message, attributed to the caller's line.

  It wraps the ``@loss`` function, so the wrapper's frame is the only one
  between the caller and ``warnings.warn`` (``stacklevel=2``); the value
  rules and the signature are the wrapped function's.
  """

  def decorate(fn: F) -> F:
    message = (
      f"The function {fn.__name__} is deprecated. Please use {replacement} "
      "instead."
    )

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
      warnings.warn(message, DeprecationWarning, stacklevel=2)
      return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]

  return decorate


def _inputs(
  axis: Axis, where: ArrayLike | None, **arrays: ArrayLike
) -> tuple[
  jax.Array, jax.Array, tuple[int, ...], jax.Array | None, jax.Array | None
]:
  """Checks two same-shaped float arrays (named by the keywords) and reads
  ``axis`` (an int, a sequence of ints, or ``None`` for all) and ``where``.

  Returns ``(first, second, axes, element_mask, example_mask)``.
  """
  first, second = checks.same_shape_floats(**arrays)
  axes = tuple(sorted(checks.axes(axis, first.ndim)))
  elements, examples = split_where(where, first.shape, axes)
  return first, second, axes, elements, examples


def _sum(
  terms: jax.Array, axes: tuple[int, ...], elements: jax.Array | None
) -> jax.Array:
  """The sum of ``terms`` over ``axes``, unmasked elements only."""
  if elements is not None:
    terms = jnp.where(elements, terms, 0)
  return jnp.sum(terms, axis=axes)


def _kl_terms(log_predictions: jax.Array, targets: jax.Array) -> jax.Array:
  """``t (log t - log q)``, with ``0 log 0 = 0``.

  A zero target gives 0 with finite gradients, also at ``log q = -inf`` (a
  masked class; ``0 * -inf`` would be NaN); a positive target at
  ``log q = -inf`` gives ``+inf``. Written as one product, so that ``t log
  t`` and ``t log q`` cannot overflow apart (the generalized KL's measures
  are unbounded: at ``t = q = 1e37`` both overflow float32, while their
  difference is 0).
  """
  t, log_q = targets, log_predictions
  log_t = jnp.log(jnp.where(t > 0, t, jnp.ones_like(t)))  # 0 at t = 0
  zero = (t == 0) & jnp.isneginf(log_q)
  return t * (log_t - jnp.where(zero, jnp.zeros_like(log_q), log_q))


def _generalized_kl_terms(
  log_predictions: jax.Array, targets: jax.Array
) -> jax.Array:
  """``t (log t - log q) + q - t``; ``+inf`` (with an infinite gradient)
  where ``q = exp(log q)`` overflows, never ``inf - inf``."""
  overflow = jnp.isposinf(jnp.exp(log_predictions))
  safe = jnp.where(overflow, jnp.zeros_like(log_predictions), log_predictions)
  terms = _kl_terms(safe, targets) + jnp.exp(safe) - targets
  return jnp.where(overflow, jnp.exp(log_predictions), terms)


def _kl_log_terms(log_q: jax.Array, log_p: jax.Array) -> jax.Array:
  """``p (log p - log q)`` from logs: 0 where ``log p = -inf`` (whatever
  ``log q``, finite gradients), ``+inf`` where only ``log q`` is ``-inf``."""
  zero = jnp.isneginf(log_p)
  safe_p = jnp.where(zero, jnp.zeros_like(log_p), log_p)
  safe_q = jnp.where(zero, jnp.zeros_like(log_q), log_q)
  return jnp.where(zero, 0, jnp.exp(safe_p) * (safe_p - safe_q))


@loss(
  log_predictions=value_checks.log_probabilities,
  targets=value_checks.unit_interval,
)
def kl_divergence(
  log_predictions: ArrayLike,
  targets: ArrayLike,
  axis: Axis = -1,
  where: ArrayLike | None = None,
  *,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""Kullback-Leibler divergence :math:`KL(p \| q)` from log-predictions.

  .. math:: \ell = \sum_i p_i (\log p_i - \log q_i), \qquad 0 \log 0 = 0

  Targets of exactly 0 contribute 0, with finite gradients (also with respect
  to the targets, where optax's gradient is NaN), also where
  ``log_predictions`` is ``-inf`` (a masked class: ``0 log 0 = 0``, as in
  ``scipy.special.rel_entr``; optax and torch give NaN there, jaxloss
  differs on purpose). A positive target on a ``log_predictions`` of
  ``-inf`` gives ``+inf``, the exact value, never NaN.

  Args:
    log_predictions: ``[..., dim]`` log-probabilities :math:`\log q`.
    targets: ``[..., dim]`` target probabilities :math:`p`, same shape.
    axis: the distribution axis: an int, a tuple of ints, or ``None`` (all).
    where: boolean mask of the inputs' shape (drops elements from the sum, as
      optax does) or of the per-example shape (drops examples).
    weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    the inputs' shape without ``axis``, or a scalar for ``"sum"``,
    ``"mean"`` and ``"batchmean"``.

  Matches ``optax.losses.kl_divergence``; with ``reduction="batchmean"``,
  ``torch.nn.functional.kl_div(log_predictions, targets,
  reduction="batchmean")``, except on an empty batch: every divergence here
  gives 0 for every scalar reduction, ``"batchmean"`` included (torch: NaN).
  Unlike optax, the two arrays must have the same shape (optax broadcasts
  them), and a ``where`` of lower rank than the inputs drops examples: optax
  broadcasts it against the inputs from the right, so a ``[batch]`` mask of
  ``[batch, dim]`` inputs with ``batch == dim`` masks the distribution axis
  there.

  >>> import jax.numpy as jnp, jaxloss
  >>> p = jnp.array([[0.5, 0.5], [1.0, 0.0]])
  >>> jaxloss.kl_divergence(jnp.log(jnp.array([[0.25, 0.75]] * 2)), p)
  Array([0.14384104, 1.3862944 ], dtype=float32)

  References:
    Kullback and Leibler, `On information and sufficiency
    <https://doi.org/10.1214/aoms/1177729694>`_, 1951.
  """
  log_q, p, axes, elements, examples = _inputs(
    axis, where, log_predictions=log_predictions, targets=targets
  )
  values = _sum(_kl_terms(log_q, p), axes, elements)
  return reduce(values, reduction, weights=weights, where=examples)


@loss(
  log_predictions=value_checks.log_probabilities,
  log_targets=value_checks.log_probabilities,
)
def kl_divergence_with_log_targets(
  log_predictions: ArrayLike,
  log_targets: ArrayLike,
  axis: Axis = -1,
  where: ArrayLike | None = None,
  *,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""Kullback-Leibler divergence :math:`KL(p \| q)` with log-space targets.

  .. math:: \ell = \sum_i e^{\log p_i} (\log p_i - \log q_i)

  A ``log_targets`` entry of ``-inf`` (:math:`p_i = 0`) contributes 0 with
  finite gradients, whatever ``log_predictions`` is, ``-inf`` included
  (optax and torch give NaN for ``-inf`` on both sides; jaxloss differs on
  purpose). A finite ``log_targets`` entry on a ``log_predictions`` of
  ``-inf`` gives ``+inf``, never NaN.

  Args:
    log_predictions: ``[..., dim]`` log-probabilities :math:`\log q`.
    log_targets: ``[..., dim]`` target log-probabilities :math:`\log p`.
    axis: the distribution axis: an int, a tuple of ints, or ``None`` (all).
    where: boolean mask of the inputs' shape (drops elements) or of the
      per-example shape (drops examples).
    weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    the inputs' shape without ``axis``, or a scalar for ``"sum"``,
    ``"mean"`` and ``"batchmean"``.

  Matches ``optax.losses.kl_divergence_with_log_targets`` and
  ``torch.nn.functional.kl_div(..., log_target=True)``.
  Unlike optax, the two arrays must have the same shape (optax broadcasts
  them), and a ``where`` of lower rank than the inputs drops examples: optax
  broadcasts it against the inputs from the right, so a ``[batch]`` mask of
  ``[batch, dim]`` inputs with ``batch == dim`` masks the distribution axis
  there.

  >>> import jax.numpy as jnp, jaxloss
  >>> jaxloss.kl_divergence_with_log_targets(
  ...     jnp.log(jnp.array([0.25, 0.75])), jnp.log(jnp.array([0.5, 0.5])))
  Array(0.14384104, dtype=float32)

  References:
    Kullback and Leibler, `On information and sufficiency
    <https://doi.org/10.1214/aoms/1177729694>`_, 1951.
  """
  log_q, log_p, axes, elements, examples = _inputs(
    axis, where, log_predictions=log_predictions, log_targets=log_targets
  )
  values = _sum(_kl_log_terms(log_q, log_p), axes, elements)
  return reduce(values, reduction, weights=weights, where=examples)


@loss(targets=value_checks.nonnegative)
def generalized_kl_divergence(
  log_predictions: ArrayLike,
  targets: ArrayLike,
  axis: Axis = -1,
  where: ArrayLike | None = None,
  *,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""Generalized KL divergence between unnormalized non-negative measures.

  The Bregman divergence of :math:`x \log x - x`:

  .. math:: \ell = \sum_i \big(p_i (\log p_i - \log q_i) + q_i - p_i\big)

  Targets of exactly 0 contribute :math:`q_i`, with finite gradients
  (optax's gradient with respect to such a target is NaN), also where
  ``log_predictions`` is ``-inf`` (0; optax gives NaN there, jaxloss differs
  on purpose). A positive target on a ``log_predictions`` of ``-inf``, and
  any entry whose :math:`q_i = e^{\log q_i}` overflows the dtype, give
  ``+inf``, never NaN. :math:`p_i (\log p_i - \log q_i)` is computed as
  one product, so that it does not overflow where it is representable.

  Args:
    log_predictions: ``[..., dim]`` logs :math:`\log q` of the predicted
      measure (where its exponential overflows, the term is ``+inf``).
    targets: ``[..., dim]`` non-negative target measure :math:`p`.
    axis: the distribution axis: an int, a tuple of ints, or ``None`` (all).
    where: boolean mask of the inputs' shape (drops elements) or of the
      per-example shape (drops examples).
    weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    the inputs' shape without ``axis``, or a scalar for ``"sum"``,
    ``"mean"`` and ``"batchmean"``.

  Matches ``optax.losses.generalized_kl_divergence``.
  Unlike optax, the two arrays must have the same shape (optax broadcasts
  them), and a ``where`` of lower rank than the inputs drops examples: optax
  broadcasts it against the inputs from the right, so a ``[batch]`` mask of
  ``[batch, dim]`` inputs with ``batch == dim`` masks the distribution axis
  there.

  >>> import jax.numpy as jnp, jaxloss
  >>> jaxloss.generalized_kl_divergence(jnp.log(jnp.array([1.0, 2.0])),
  ...                                   jnp.array([2.0, 2.0]))
  Array(0.38629436, dtype=float32)

  References:
    Boyd and Vandenberghe, `Convex optimization
    <https://stanford.edu/~boyd/cvxbook/>`_, 2004, p. 90; Bregman, `The
    relaxation method of finding the common point of convex sets
    <https://doi.org/10.1016/0041-5553(67)90040-7>`_, 1967.
  """
  log_q, p, axes, elements, examples = _inputs(
    axis, where, log_predictions=log_predictions, targets=targets
  )
  values = _sum(_generalized_kl_terms(log_q, p), axes, elements)
  return reduce(values, reduction, weights=weights, where=examples)


@_deprecated("generalized_kl_divergence")
@loss(targets=value_checks.nonnegative)
def convex_kl_divergence(
  log_predictions: ArrayLike,
  targets: ArrayLike,
  axis: Axis = -1,
  where: ArrayLike | None = None,
  *,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""Deprecated alias of :func:`generalized_kl_divergence` (as in optax).

  Every call warns, as optax's does: a ``DeprecationWarning`` with optax's
  message ("The function convex_kl_divergence is deprecated. Please use
  generalized_kl_divergence instead."), attributed to the calling line.
  Under ``jit`` it warns when the function is traced. The values are those
  of :func:`generalized_kl_divergence` (zero targets, ``-inf`` and overflow
  included).

  .. math:: \ell = \sum_i \big(p_i (\log p_i - \log q_i) + q_i - p_i\big)

  Args:
    log_predictions: ``[..., dim]`` logs :math:`\log q` of the predicted
      measure.
    targets: ``[..., dim]`` non-negative target measure :math:`p`.
    axis: the distribution axis: an int, a tuple of ints, or ``None`` (all).
    where: boolean mask of the inputs' shape (drops elements) or of the
      per-example shape (drops examples).
    weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    the inputs' shape without ``axis``, or a scalar for ``"sum"``,
    ``"mean"`` and ``"batchmean"``.

  Matches ``optax.losses.convex_kl_divergence``.
  Unlike optax, the two arrays must have the same shape (optax broadcasts
  them), and a ``where`` of lower rank than the inputs drops examples: optax
  broadcasts it against the inputs from the right, so a ``[batch]`` mask of
  ``[batch, dim]`` inputs with ``batch == dim`` masks the distribution axis
  there.

  >>> import warnings, jax.numpy as jnp, jaxloss
  >>> with warnings.catch_warnings(record=True) as caught:
  ...   warnings.simplefilter("always")
  ...   jaxloss.convex_kl_divergence(jnp.log(jnp.array([1.0, 2.0])),
  ...                                jnp.array([2.0, 2.0]))
  Array(0.38629436, dtype=float32)
  >>> print(caught[0].category.__name__)
  DeprecationWarning
  >>> print(caught[0].message)
  The function convex_kl_divergence is deprecated. Please use
  generalized_kl_divergence instead.

  References:
    Boyd and Vandenberghe, `Convex optimization
    <https://stanford.edu/~boyd/cvxbook/>`_, 2004, p. 90.
  """
  return generalized_kl_divergence(  # errors name convex_kl_divergence
    log_predictions, targets, axis, where, weights=weights, reduction=reduction
  )


@loss(
  log_p=value_checks.log_probabilities, log_q=value_checks.log_probabilities
)
def js_divergence(
  log_p: ArrayLike,
  log_q: ArrayLike,
  *,
  axis: Axis = -1,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""Jensen-Shannon divergence between two distributions given as logs.

  .. math::
    \ell = \tfrac12 KL(p \| m) + \tfrac12 KL(q \| m), \qquad
    \log m = \operatorname{logaddexp}(\log p, \log q) - \log 2

  Computed in log space, so it stays finite (with finite gradients) when
  either distribution has zeros, given as very negative logs such as -1e4
  or as exact ``-inf`` (on one side or both: ``0 log 0 = 0``).
  Symmetric, and between 0 and :math:`\log 2`.

  Args:
    log_p: ``[..., dim]`` log-probabilities of the first distribution.
    log_q: ``[..., dim]`` log-probabilities of the second, same shape.
    axis: the distribution axis: an int, a tuple of ints, or ``None`` (all).
    where: boolean mask of the inputs' shape (drops elements) or of the
      per-example shape (drops examples).
    weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    the inputs' shape without ``axis``, or a scalar for ``"sum"``,
    ``"mean"`` and ``"batchmean"``.

  Matches ``scipy.spatial.distance.jensenshannon(p, q) ** 2`` (natural log).

  >>> import jax.numpy as jnp, jaxloss
  >>> jaxloss.js_divergence(jnp.log(jnp.array([1.0, 1e-30])),
  ...                       jnp.log(jnp.array([1e-30, 1.0])))
  Array(0.6931472, dtype=float32)

  References:
    Lin, `Divergence measures based on the Shannon entropy
    <https://doi.org/10.1109/18.61115>`_, 1991.
  """
  first, second, axes, elements, examples = _inputs(
    axis, where, log_p=log_p, log_q=log_q
  )
  # log 0 = -inf on both sides would make log m = -inf and its gradient NaN:
  # such an entry has m = 0 and contributes 0 (through _kl_log_terms).
  both = jnp.isneginf(first) & jnp.isneginf(second)
  first = jnp.where(both, jnp.zeros_like(first), first)
  second = jnp.where(both, jnp.zeros_like(second), second)
  log_m = jnp.logaddexp(first, second) - math.log(2.0)
  terms = 0.5 * (_kl_log_terms(log_m, first) + _kl_log_terms(log_m, second))
  terms = jnp.where(both, 0, terms)
  values = _sum(terms, axes, elements)
  return reduce(values, reduction, weights=weights, where=examples)


@loss
def gaussian_kl_divergence(
  mean: ArrayLike,
  log_variance: ArrayLike,
  *,
  prior_mean: ArrayLike = 0.0,
  prior_log_variance: ArrayLike = 0.0,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""KL divergence between diagonal Gaussians, summed over the latent axis.

  .. math::
    \ell = \frac12 \sum_d \Big(\frac{\sigma_d^2 + (\mu_d - \mu_{0,d})^2}
           {\sigma_{0,d}^2} - 1 + \log \sigma_{0,d}^2 - \log \sigma_d^2\Big)

  :math:`KL(\mathcal N(\mu, \sigma^2) \,\|\, \mathcal N(\mu_0, \sigma_0^2))`;
  with the default standard-normal prior, the VAE's KL term.

  Args:
    mean: ``[..., latent]`` means :math:`\mu`.
    log_variance: ``[..., latent]`` log-variances :math:`\log \sigma^2`.
    prior_mean: the prior's mean :math:`\mu_0`, broadcastable to ``mean``
      (may be a traced array).
    prior_log_variance: the prior's log-variance :math:`\log \sigma_0^2`,
      broadcastable to ``mean``.
    where: boolean mask of the inputs' shape (drops latent dimensions) or of
      the per-example shape (drops examples).
    weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``[...]`` per-example KL (the latent axis removed), or a scalar.

  Matches ``torch.distributions.kl_divergence`` of two ``Normal``
  distributions, summed over the last axis.

  >>> import jax.numpy as jnp, jaxloss
  >>> jaxloss.gaussian_kl_divergence(jnp.array([[0.0, 1.0]]),
  ...                                jnp.array([[0.0, jnp.log(2.0)]]))
  Array([0.6534264], dtype=float32)

  References:
    Kingma and Welling, `Auto-encoding variational Bayes
    <https://arxiv.org/abs/1312.6114>`_, 2014 (appendix B).
  """
  mu, log_var, axes, elements, examples = _inputs(
    -1, where, mean=mean, log_variance=log_variance
  )
  mu0 = checks.broadcast_weights("prior_mean", prior_mean, mu)
  log_var0 = checks.broadcast_weights(
    "prior_log_variance", prior_log_variance, mu
  )
  log_ratio = log_var - log_var0
  squared = jnp.square(mu - mu0) * jnp.exp(-log_var0)
  terms = 0.5 * (jnp.exp(log_ratio) + squared - 1 - log_ratio)
  values = _sum(terms, axes, elements)
  return reduce(values, reduction, weights=weights, where=examples)


__all__ = [
  "convex_kl_divergence",
  "gaussian_kl_divergence",
  "generalized_kl_divergence",
  "js_divergence",
  "kl_divergence",
  "kl_divergence_with_log_targets",
]
