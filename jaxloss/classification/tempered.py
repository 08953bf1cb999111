"""The bi-tempered logistic loss: a tempered logarithm in the loss (``t1``)
and a tempered exponential in the softmax (``t2``).

The class axis is the last. The tempered softmax's normalisation has no
closed form for ``t2 != 1``; it is found as Google's reference code finds it
(bisection for ``t2 < 1``, a fixed point for ``t2 > 1``, ``num_iters``
steps of either), and the gradient is Google's closed form (a
``custom_vjp``): nothing is differentiated through the iteration.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss._core import checks, numerics, value_checks
from jaxloss._core import labels as labels_lib
from jaxloss._core.loss import loss
from jaxloss._core.reduction import Reduction, reduce

_CLASS_INDEX = value_checks.class_index("logits", axis_arg=None)


def _labels_rule(args, arg):
  """Value rule: class ids in range, or label probabilities in [0, 1]."""
  labels = jnp.asarray(args[arg])
  if jnp.issubdtype(labels.dtype, jnp.integer) and labels.ndim == (
    jnp.ndim(args["logits"]) - 1
  ):
    return _CLASS_INDEX(args, arg)
  return value_checks.unit_interval(args, arg)


def _log_t(u: jax.Array, t: float) -> jax.Array:
  """Tempered logarithm ``(u^(1−t) − 1)/(1 − t)`` (``log`` at ``t = 1``)."""
  if t == 1.0:
    return jnp.log(u)
  return (jnp.power(u, 1.0 - t) - 1.0) / (1.0 - t)


def _exp_t(u: jax.Array, t: float) -> jax.Array:
  """Tempered exponential ``max(1 + (1−t)u, 0)^(1/(1−t))``."""
  if t == 1.0:
    return jnp.exp(u)
  return jnp.power(jnp.maximum(1.0 + (1.0 - t) * u, 0.0), 1.0 / (1.0 - t))


def _normalization(logits: jax.Array, t: float, num_iters: int) -> jax.Array:
  """``[..., 1]`` λ with ``Σ exp_t(x − λ) ≈ 1``, Google's way (the same
  steps in the same order, so float32 agrees to rounding)."""
  if t == 1.0:
    return jax.nn.logsumexp(logits, axis=-1, keepdims=True)
  mu = jnp.max(logits, axis=-1, keepdims=True)
  shifted = logits - mu
  if t > 1.0:  # fixed point of the partition function

    def step(_, current):
      partition = jnp.sum(_exp_t(current, t), axis=-1, keepdims=True)
      return shifted * jnp.power(partition, 1.0 - t)

    current = jax.lax.fori_loop(0, num_iters, step, shifted)
    partition = jnp.sum(_exp_t(current, t), axis=-1, keepdims=True)
    return -_log_t(1.0 / partition, t) + mu
  # t < 1: bisection in [0, −log_t(1/d)], d the classes inside the support.
  inside = jnp.sum(shifted > -1.0 / (1.0 - t), axis=-1, keepdims=True)
  lower = jnp.zeros_like(mu)
  upper = -_log_t(1.0 / inside.astype(logits.dtype), t)

  def bisect(_, bounds):
    lower, upper = bounds
    middle = (upper + lower) / 2.0
    total = jnp.sum(_exp_t(shifted - middle, t), axis=-1, keepdims=True)
    below = total < 1.0
    return jnp.where(below, lower, middle), jnp.where(below, middle, upper)

  lower, upper = jax.lax.fori_loop(0, num_iters, bisect, (lower, upper))
  return (upper + lower) / 2.0 + mu


def _probabilities(
  logits: jax.Array, t2: float, num_iters: int
) -> tuple[jax.Array, jax.Array]:
  """The tempered softmax and its log (in log space, for ``t1 = 1``)."""
  centred = logits - _normalization(logits, t2, num_iters)
  if t2 == 1.0:
    return jnp.exp(centred), centred
  base = jnp.maximum(1.0 + (1.0 - t2) * centred, 0.0)
  return jnp.power(base, 1.0 / (1.0 - t2)), jnp.log(base) / (1.0 - t2)


def _value(
  logits: jax.Array,
  labels: jax.Array,
  t1: float,
  t2: float,
  num_iters: int,
) -> tuple[jax.Array, jax.Array]:
  """Per-example loss and the log of the tempered softmax.

  Powers of ``p`` are taken as ``exp(k log p)`` from ``log p`` (a tail
  probability that underflows keeps its powers, e.g. ``p^(t2 − t1)``)."""
  probs, log_probs = _probabilities(logits, t2, num_iters)
  positive = labels > 0
  safe = jnp.where(positive, labels, 1.0)
  if t1 == 1.0:
    # y (log y − log p): 0 where y = 0 (also where p = 0).
    cross = jnp.where(positive, labels * (jnp.log(safe) - log_probs), 0.0)
    if t2 == 1.0:  # Google's KL: Σ y (log y − log softmax x)
      return jnp.sum(cross, axis=-1), log_probs
    return jnp.sum(cross - (labels - probs), axis=-1), log_probs
  label_term = jnp.where(positive, labels * _log_t(safe, t1), 0.0)
  # y log_t p: 0 where y = 0, also where p = 0 and t1 > 1 (log_t 0 = −inf).
  log_t_probs = jnp.expm1((1.0 - t1) * log_probs) / (1.0 - t1)
  cross = jnp.where(positive, labels * log_t_probs, 0.0)
  two = 2.0 - t1
  values = label_term - cross
  values -= (jnp.power(labels, two) - jnp.exp(two * log_probs)) / two
  return jnp.sum(values, axis=-1), log_probs


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def _bi_tempered(logits, labels, t1, t2, num_iters):
  return _value(logits, labels, t1, t2, num_iters)[0]


def _bi_tempered_fwd(logits, labels, t1, t2, num_iters):
  values, log_probs = _value(logits, labels, t1, t2, num_iters)
  return values, (labels, log_probs)


def _bi_tempered_bwd(t1, t2, num_iters, residuals, cotangent):
  """Google's gradient: ``(p − y) p^(t2−t1)`` minus its sum times the
  escort ``p^t2 / Σ p^t2``, the powers from ``log p``. At a class outside
  the support (``p = 0``, only for ``t2 < 1``) ``p^(t2−t1)`` is Google's
  ``0^(t2−t1)`` (0, or 1 at ``t2 = t1``: the limit from inside the
  support), except that for ``t2 < t1``, where Google's is ``inf`` (a NaN
  gradient), it is 0: the class is locally constant."""
  del num_iters
  labels, log_probs = residuals
  outside = jnp.isneginf(log_probs)
  power = jnp.exp((t2 - t1) * jnp.where(outside, 0.0, log_probs))
  forget = jnp.where(outside, 1.0 if t2 == t1 else 0.0, power)
  scaled = (jnp.exp(log_probs) - labels) * forget
  escorts = jax.nn.softmax(t2 * log_probs, axis=-1)
  derivative = scaled - escorts * jnp.sum(scaled, axis=-1, keepdims=True)
  # An exact 0 for a zero cotangent (a dropped example), whatever its inputs.
  cotangent = cotangent[..., None]
  grad = jnp.where(cotangent == 0, 0.0, cotangent * derivative)
  return grad, jnp.zeros_like(labels)


_bi_tempered.defvjp(_bi_tempered_fwd, _bi_tempered_bwd)


def _static_temperature(arg: str, value: object) -> float:
  if not checks.is_static_number(value):
    raise checks.fail(
      f"`{arg}` selects the algorithm (bisection, log-sum-exp or fixed "
      f"point) and must be a Python number, got {type(value).__name__}.",
      TypeError,
    )
  return float(value)


@loss(labels=_labels_rule)
def bi_tempered_logistic_loss(
  logits: ArrayLike,
  labels: ArrayLike,
  *,
  t1: float,
  t2: float,
  num_iters: int = 5,
  label_smoothing: ArrayLike = 0.0,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""Bi-tempered logistic loss: a bounded, heavy-tailed softmax loss.

  .. math::
    \ell = \sum_c \Big[y_c \big(\log_{t_1} y_c - \log_{t_1} p_c\big)
      - \tfrac{1}{2 - t_1}\big(y_c^{2 - t_1} - p_c^{2 - t_1}\big)\Big],
    \qquad p_c = \exp_{t_2}(x_c - \lambda(x))

  with :math:`\log_t u = (u^{1-t} - 1)/(1 - t)`, :math:`\exp_t u =
  [1 + (1 - t) u]_+^{1/(1-t)}` and :math:`\lambda` the normalisation that
  makes :math:`p` sum to 1. ``t1 < 1`` bounds the loss (robust to outliers
  far from the boundary); ``t2 > 1`` gives the softmax heavy tails (robust
  to mislabelled examples near it); ``t2 < 1`` gives finite support. At
  ``t1 = t2 = 1`` it is the KL divergence to the labels,
  :math:`\sum_c y_c (\log y_c - \log \operatorname{softmax}(x)_c)`: the
  softmax cross-entropy for one-hot labels.

  :math:`\lambda` is Google's: ``num_iters`` bisection steps for ``t2 < 1``
  (the bracket :math:`[0, -\log_{t_2}(1/d)]` above the largest logit, ``d``
  the classes inside the support, halves each step: the default 5 leaves
  the sum of :math:`p` up to a few per cent from 1, as Google's does; raise
  ``num_iters`` for an exact softmax), ``num_iters`` fixed-point steps for
  ``t2 > 1``, ``logsumexp`` at ``t2 = 1``. The gradient with respect to the
  logits is Google's closed form (a ``custom_vjp``, exact at the converged
  :math:`\lambda`), never autodiff through the iteration; the labels are
  targets and get a zero gradient (as Google's).

  Label smoothing is Google's: :math:`(1 - \tfrac{K}{K-1}\varepsilon) y +
  \tfrac{\varepsilon}{K-1}` over :math:`K` classes, which puts
  :math:`1 - \varepsilon` on a one-hot label's class and
  :math:`\varepsilon/(K-1)` on each other class (optax's and torch's
  :math:`(1 - \varepsilon) y + \varepsilon/K` put :math:`1 - \varepsilon +
  \varepsilon/K` on it: ``ε_optax = ε_google · K/(K−1)`` gives the same
  labels).

  Args:
    logits: ``[..., num_classes]`` floating logits (the class axis last).
    labels: ``[..., num_classes]`` label distributions (float, int or bool,
      same shape as ``logits``), or ``[...]`` integer class ids, which are
      one-hot encoded (an id outside ``[0, num_classes)`` gives NaN for its
      example unless ``where`` drops it).
    t1: temperature of the loss's logarithm, ``0 <= t1 < 2`` (``< 1``
      bounded). A Python number: it selects the formula.
    t2: temperature of the softmax's exponential, ``> 0`` (``> 1`` heavy
      tails, ``< 1`` finite support). A Python number: it selects the
      algorithm.
    num_iters: bisection or fixed-point steps (Google's default 5).
    label_smoothing: :math:`\varepsilon \in [0, 1]` in Google's form (may be
      traced).
    where, weights, reduction: see :func:`jaxloss.reduce`; ``where`` has
      the per-example shape (``[...]``) and drops examples (no class mask);
      default ``"none"``.

  Returns:
    ``[...]`` per-example loss, or a scalar for ``"sum"``/``"mean"``.

  Matches ``jax_bitempered_loss.loss.bi_tempered_logistic_loss`` (Google's
  reference code: values and gradients to float32 rounding), which takes
  only label distributions. Where a class lies outside the support
  (``p = 0``, ``t2 < 1``), jaxloss is finite where Google's is NaN: a zero
  label there contributes 0 to the value at ``t1 = 1`` (Google's
  ``0 · log 0``), and for ``t2 < t1`` the class's gradient term is 0 (the
  derivative inside the flat region; Google's is ``0 · inf``). Logits of
  ±1e4 give finite values and gradients for ``t1 < 1``; with ``t1 >= 1``
  a positive label on a class of probability 0 (``t2 < 1``) or one that
  underflows costs ``+inf``, as it does mathematically.

  >>> import jax.numpy as jnp, jaxloss
  >>> logits = jnp.array([[2.0, 0.0, -1.0]])
  >>> print(jaxloss.bi_tempered_logistic_loss(logits, jnp.array([0]),
  ...                                         t1=0.8, t2=1.2))
  [0.1599...]
  >>> print(jaxloss.bi_tempered_logistic_loss(logits, jnp.array([0]),
  ...                                         t1=1.0, t2=1.0))
  [0.1698...]

  References:
    Amid, Warmuth, Anil and Koren, `Robust Bi-Tempered Logistic Loss Based
    on Bregman Divergences <https://arxiv.org/abs/1906.03361>`_, 2019
    (reference code: ``google/bi-tempered-loss``).
  """
  t1 = _static_temperature("t1", t1)
  t2 = _static_temperature("t2", t2)
  if not 0.0 <= t1 < 2.0:
    raise checks.fail(f"`t1` must lie in [0, 2), got {t1}.")
  checks.positive("t2", t2)
  checks.positive_int("num_iters", num_iters)
  checks.in_unit_interval("label_smoothing", label_smoothing)
  logits = checks.as_float("logits", logits)
  checks.min_rank("logits", logits, 1, "a class axis")
  labels = jnp.asarray(labels)
  num_classes = logits.shape[-1]
  ids = None
  if jnp.issubdtype(labels.dtype, jnp.integer) and (
    labels.ndim == logits.ndim - 1
  ):
    checks.labels_for(labels, logits, logits.ndim - 1)
    ids = labels
    if where is not None and jnp.ndim(where) == ids.ndim:
      ids = jnp.where(checks.as_mask("where", where), ids, 0)
    labels = jax.nn.one_hot(ids, num_classes, dtype=logits.dtype)
  else:
    labels = checks.as_targets("labels", labels, logits)
    checks.same_shape(logits=logits, labels=labels)
  if not (checks.is_static_number(label_smoothing) and label_smoothing == 0):
    smoothing = numerics.like(label_smoothing, logits)
    labels = (1 - num_classes / (num_classes - 1) * smoothing) * labels
    labels = labels + smoothing / (num_classes - 1)
  values = _bi_tempered(logits, labels, t1, t2, num_iters)
  if ids is not None:
    values = labels_lib.nan_unless_valid(values, ids, num_classes)
  return reduce(values, reduction, weights=weights, where=where)


__all__ = ["bi_tempered_logistic_loss"]
