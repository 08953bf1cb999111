"""Distillation losses between a student's and a teacher's dense logits:
Hinton's knowledge distillation, trl's generalized Jensen-Shannon divergence,
DistiLLM's skew KL and the total variation distance.

Every loss takes ``[..., vocab]`` logits, divides both by ``temperature``,
stops the teacher's gradient (:func:`jax.lax.stop_gradient`: only the student
learns), and returns one value per token, summed over the vocabulary, that
reduces through :func:`jaxloss.reduce` (``where`` a per-token mask such as
``labels != -100``). Everything is computed from log-probabilities: a
mixture of the two distributions is a log-sum-exp, never the log of a sum of
probabilities, and a ``-inf`` teacher logit (a masked vocabulary entry,
probability exactly 0) contributes ``0 · log 0 = 0`` with finite gradients.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss._core import checks, numerics
from jaxloss._core.loss import loss
from jaxloss._core.reduction import Reduction, reduce


def kl_terms(log_p: jax.Array, log_q: jax.Array) -> jax.Array:
  """``p (log p − log q)`` elementwise from logs: 0 where ``log p = -inf``
  (whatever ``log q``, with finite gradients: no ``0 · (−inf)``), ``+inf``
  where only ``log q`` is ``-inf`` (also where ``exp(log p)`` underflows to
  0: ``p > 0`` there), with a zero gradient at those entries."""
  zero = jnp.isneginf(log_p)
  infinite = jnp.isneginf(log_q) & ~zero
  safe_p = jnp.where(zero, jnp.zeros_like(log_p), log_p)
  safe_q = jnp.where(zero | infinite, jnp.zeros_like(log_q), log_q)
  terms = jnp.exp(safe_p) * (safe_p - safe_q)
  return jnp.where(zero, 0, jnp.where(infinite, jnp.inf, terms))


def _kl(log_p: jax.Array, log_q: jax.Array) -> jax.Array:
  """``KL(p ‖ q)`` summed over the last axis, from log-probabilities."""
  return jnp.sum(kl_terms(log_p, log_q), axis=-1)


def generalized_jsd_per_token(
  student_log_probs: jax.Array, teacher_log_probs: jax.Array, beta: float
) -> jax.Array:
  r"""trl's generalized Jensen-Shannon divergence per token, summed over the
  vocabulary (the last axis); private to :mod:`jaxloss.distillation`.

  .. math::
    m = (1 - \beta)\, p_s + \beta\, p_t, \qquad
    \ell = \beta\, KL(p_t \| m) + (1 - \beta)\, KL(p_s \| m)

  with :math:`\log m` a log-sum-exp of :math:`\log(1-\beta) + \log p_s` and
  :math:`\log\beta + \log p_t`; ``beta == 0`` is :math:`KL(p_t \| p_s)` and
  ``beta == 1`` :math:`KL(p_s \| p_t)` (trl's own branches, not the limits of
  the formula, which is 0 at both ends).

  Args:
    student_log_probs: ``[..., vocab]`` log-probabilities (already at the
      temperature), computed in the dtype given.
    teacher_log_probs: ``[..., vocab]`` log-probabilities, same shape; ``-inf``
      entries (a masked vocabulary) give finite values and gradients for
      ``beta < 1``. No gradient is stopped here: the caller does it.
    beta: a static Python float in ``[0, 1]`` (not checked here).

  Returns:
    ``[...]``: the divergence of each token.
  """
  if beta == 0:
    return _kl(teacher_log_probs, student_log_probs)
  if beta == 1:
    return _kl(student_log_probs, teacher_log_probs)
  log_mixture = _log_mixture(student_log_probs, teacher_log_probs, beta)
  return beta * _kl(teacher_log_probs, log_mixture) + (1 - beta) * _kl(
    student_log_probs, log_mixture
  )


def _log_mixture(
  log_p: jax.Array, log_q: jax.Array, weight_q: float | jax.Array
) -> jax.Array:
  """``log((1 − w) p + w q)`` as a log-sum-exp of the logs (``w`` in
  ``[0, 1]``; at ``w = 0`` or 1 one side is ``-inf`` and drops out)."""
  weight_q = jnp.asarray(weight_q, log_p.dtype)
  return jnp.logaddexp(log_p + jnp.log1p(-weight_q), log_q + jnp.log(weight_q))


def log_probs_at_temperature(
  student_logits: ArrayLike,
  teacher_logits: ArrayLike,
  temperature: ArrayLike,
) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Checks the logits (same shape, floating, rank >= 1; bf16/f16 computed
  in float32) and the temperature (a positive scalar, may be traced), and
  returns ``(student_log_probs, teacher_log_probs, temperature)`` at that
  temperature, the teacher's gradient stopped."""
  student, teacher = checks.same_shape_floats(
    student_logits=student_logits, teacher_logits=teacher_logits
  )
  checks.min_rank("student_logits", student, 1)
  checks.positive("temperature", temperature)
  temperature = checks.scalar("temperature", temperature)
  teacher = jax.lax.stop_gradient(teacher)
  return (
    numerics.log_softmax_at_temperature(student, temperature),
    numerics.log_softmax_at_temperature(teacher, temperature),
    temperature,
  )


@loss
def kd_loss(
  student_logits: ArrayLike,
  teacher_logits: ArrayLike,
  *,
  temperature: ArrayLike = 1.0,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""Hinton's knowledge distillation: the KL divergence from the teacher's
  softened distribution to the student's, scaled by :math:`T^2`.

  .. math::
    \ell = T^2 \sum_v p_{t,v} (\log p_{t,v} - \log p_{s,v}), \qquad
    p_s = \operatorname{softmax}(s / T),\ p_t = \operatorname{softmax}(t / T)

  The :math:`T^2` keeps the gradient's scale independent of the temperature
  (Hinton et al., section 2). The teacher's gradient is stopped. A ``-inf``
  teacher logit (probability 0) contributes 0 with finite gradients.

  Args:
    student_logits: ``[..., vocab]`` logits of the student.
    teacher_logits: ``[..., vocab]`` logits of the teacher (no gradient).
    temperature: :math:`T > 0`, divides both logits; may be traced.
    where: ``[...]`` per-token mask (e.g. ``labels != -100``).
    weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``[...]`` (one value per token), or a scalar for ``"sum"``, ``"mean"``
    and ``"batchmean"``.

  Equals ``torch.nn.functional.kl_div(log_softmax(s / T), log_softmax(t /
  T), log_target=True, reduction="none").sum(-1) * T**2``, and trl 1.16's
  ``GKDTrainer.generalized_jsd_loss(..., beta=0)`` times :math:`T^2`.

  >>> import jax.numpy as jnp, jaxloss
  >>> student = jnp.array([[1.0, 0.0, -1.0]])
  >>> teacher = jnp.array([[0.0, 1.0, -jnp.inf]])
  >>> jaxloss.kd_loss(student, teacher, temperature=2.0)
  Array([1.3146...], dtype=float32)

  References:
    Hinton, Vinyals and Dean, `Distilling the knowledge in a neural network
    <https://arxiv.org/abs/1503.02531>`_, 2015.
  """
  student, teacher, temperature = log_probs_at_temperature(
    student_logits, teacher_logits, temperature
  )
  values = jnp.square(temperature) * _kl(teacher, student)
  return reduce(values, reduction, weights=weights, where=where)


@loss
def generalized_jsd_loss(
  student_logits: ArrayLike,
  teacher_logits: ArrayLike,
  *,
  beta: float = 0.5,
  temperature: ArrayLike = 1.0,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""The generalized Jensen-Shannon divergence of GKD (on-policy
  distillation), as trl computes it.

  .. math::
    \ell = \beta\, KL(p_t \| m) + (1 - \beta)\, KL(p_s \| m), \qquad
    m = (1 - \beta)\, p_s + \beta\, p_t

  for :math:`0 < \beta < 1`, with :math:`\log m` the log-sum-exp of
  :math:`\log(1 - \beta) + \log p_s` and :math:`\log \beta + \log p_t`;
  ``beta=0`` is the forward KL :math:`KL(p_t \| p_s)` and ``beta=1`` the
  reverse KL :math:`KL(p_s \| p_t)`. These two are trl's own branches, not
  the limits of the formula (which is 0 at both ends): the loss is
  discontinuous in ``beta`` at 0 and 1, as in trl. ``beta=0.5`` is the
  Jensen-Shannon divergence. Both logits are divided by ``temperature``
  first; no :math:`T^2` factor (trl has none).

  The teacher's gradient is stopped. A ``-inf`` teacher logit (a masked
  vocabulary entry) gives finite values and gradients for ``beta < 1``
  (trl's ``F.kl_div`` gives NaN there for every ``beta < 1``); at ``beta=1``
  the reverse KL is ``+inf`` wherever the student puts mass on such an
  entry, as in trl.

  Args:
    student_logits: ``[..., vocab]`` logits of the student.
    teacher_logits: ``[..., vocab]`` logits of the teacher (no gradient).
    beta: a static Python float in ``[0, 1]`` (0 and 1 are separate
      programs).
    temperature: :math:`T > 0`, divides both logits; may be traced.
    where: ``[...]`` per-token mask: trl's ``labels`` is
      ``where=labels != -100``.
    weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``[...]`` (one value per token), or a scalar for ``"sum"``, ``"mean"``
    and ``"batchmean"``.

  Matches trl 1.16's ``trl.experimental.gkd.GKDTrainer.generalized_jsd_loss``
  (float64: 1e-10, values and gradients): its ``reduction="batchmean"`` with
  ``labels`` is ``reduction="mean", where=labels != -100`` here; without
  labels, trl's ``"batchmean"`` divides the sum by the size of axis 0 of
  ``[batch, time, vocab]`` logits, which is :func:`jaxloss.reduce`'s
  ``"batchmean"`` of the ``[batch, time]`` values; trl's ``"sum"`` is
  ``"sum"``; trl's ``"mean"`` averages over the *vocabulary* too (this
  ``"mean"`` divided by the vocabulary size); trl's ``"none"`` keeps the
  vocabulary axis (this ``"none"`` is its sum over the last axis).

  >>> import jax.numpy as jnp, jaxloss
  >>> student = jnp.array([[1.0, 0.0, -1.0]])
  >>> teacher = jnp.array([[0.0, 1.0, -jnp.inf]])
  >>> jaxloss.generalized_jsd_loss(student, teacher, beta=0.5)
  Array([0.1379...], dtype=float32)

  References:
    Agarwal et al., `On-policy distillation of language models: learning
    from self-generated mistakes <https://arxiv.org/abs/2306.13649>`_, 2024
    (equation 1).
  """
  if not checks.is_static_number(beta):
    raise checks.fail(
      f"`beta` must be a static Python float (0 and 1 are separate "
      f"programs), got {beta!r}.",
      TypeError,
    )
  checks.in_unit_interval("beta", beta)
  student, teacher, _ = log_probs_at_temperature(
    student_logits, teacher_logits, temperature
  )
  values = generalized_jsd_per_token(student, teacher, float(beta))
  return reduce(values, reduction, weights=weights, where=where)


@loss
def skew_kl_loss(
  student_logits: ArrayLike,
  teacher_logits: ArrayLike,
  *,
  alpha: ArrayLike = 0.1,
  reverse: bool = False,
  temperature: ArrayLike = 1.0,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""DistiLLM's skew Kullback-Leibler divergence (``reverse=False``) or skew
  reverse KL (``reverse=True``).

  .. math::
    \ell^{\text{SKL}} = KL\big(p_t \,\|\, \alpha p_t + (1 - \alpha) p_s\big),
    \qquad
    \ell^{\text{SRKL}} = KL\big(p_s \,\|\, \alpha p_s + (1 - \alpha) p_t\big)

  the mixture's log a log-sum-exp. Mixing a little of the first distribution
  into the second keeps the divergence bounded (by :math:`-\log \alpha`)
  and its gradient stable. ``alpha=0`` gives the plain KL (forward or
  reverse), ``alpha=1`` gives 0. Both logits are divided by ``temperature``
  first; no :math:`T^2` factor.

  The teacher's gradient is stopped. A ``-inf`` teacher logit gives finite
  values and gradients, except for the skew reverse KL at ``alpha=0`` (the
  reverse KL, ``+inf`` where the student puts mass on such an entry).

  Args:
    student_logits: ``[..., vocab]`` logits of the student.
    teacher_logits: ``[..., vocab]`` logits of the teacher (no gradient).
    alpha: the skew :math:`\alpha \in [0, 1]` (the paper uses 0.1); may be
      traced.
    reverse: a static bool: the skew reverse KL.
    temperature: :math:`T > 0`, divides both logits; may be traced.
    where: ``[...]`` per-token mask (e.g. ``labels != -100``).
    weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``[...]`` (one value per token), or a scalar for ``"sum"``, ``"mean"``
    and ``"batchmean"``.

  Matches the paper's definitions (section 3.1). The authors' code
  (``distillm/losses.py``, ``skewed_forward_kl(..., lam=alpha)``) returns the
  cross-entropy :math:`-\sum_v p_{t,v} \log m_v`, that is this skew KL plus
  the teacher's entropy :math:`H(p_t)`: the same gradient with respect to
  the student, a different value. Its ``skewed_reverse_kl`` is this skew
  reverse KL (both are averaged over the labelled tokens there:
  ``reduction="mean", where=labels != -100``).

  >>> import jax.numpy as jnp, jaxloss
  >>> student = jnp.array([[1.0, 0.0, -1.0]])
  >>> teacher = jnp.array([[0.0, 1.0, -jnp.inf]])
  >>> jaxloss.skew_kl_loss(student, teacher, alpha=0.1)
  Array([0.4404...], dtype=float32)

  References:
    Ko, Kim, Chen and Yun, `DistiLLM: Towards streamlined distillation for
    large language models <https://arxiv.org/abs/2402.03898>`_, 2024.
  """
  if not isinstance(reverse, bool):
    raise checks.fail(
      f"`reverse` must be a static bool, got {reverse!r}.", TypeError
    )
  checks.in_unit_interval("alpha", alpha)
  alpha = checks.scalar("alpha", alpha)
  student, teacher, _ = log_probs_at_temperature(
    student_logits, teacher_logits, temperature
  )
  if reverse:
    student, teacher = teacher, student  # KL(p_s ‖ α p_s + (1 − α) p_t)
  values = _kl(teacher, _log_mixture(student, teacher, alpha))
  return reduce(values, reduction, weights=weights, where=where)


@loss
def total_variation_distance(
  student_logits: ArrayLike,
  teacher_logits: ArrayLike,
  *,
  temperature: ArrayLike = 1.0,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""Total variation distance between the student's and the teacher's
  distributions.

  .. math::
    \ell = \tfrac12 \sum_v |p_{s,v} - p_{t,v}|, \qquad
    p_s = \operatorname{softmax}(s / T),\ p_t = \operatorname{softmax}(t / T)

  Bounded in ``[0, 1]``. The gradient of :math:`|x|` at :math:`x = 0` is
  taken as 0 (the library's ``sign(x)`` subgradient, as torch's
  ``l1_loss``; ``jnp.abs``'s is 1): entries where the two probabilities are
  equal contribute no gradient, and at :math:`p_s = p_t` the gradient is 0.
  The teacher's gradient is stopped.

  Args:
    student_logits: ``[..., vocab]`` logits of the student.
    teacher_logits: ``[..., vocab]`` logits of the teacher (no gradient).
    temperature: :math:`T > 0`, divides both logits; may be traced.
    where: ``[...]`` per-token mask (e.g. ``labels != -100``).
    weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``[...]`` (one value per token), or a scalar for ``"sum"``, ``"mean"``
    and ``"batchmean"``.

  Equals DistiLLM's ``tv_distance`` (``distillm/losses.py``) with
  ``reduction="mean", where=labels != -100``, for finite logits.

  >>> import jax.numpy as jnp, jaxloss
  >>> student = jnp.array([[1.0, 0.0, -1.0]])
  >>> teacher = jnp.array([[0.0, 1.0, -jnp.inf]])
  >>> jaxloss.total_variation_distance(student, teacher)
  Array([0.4863...], dtype=float32)

  References:
    Wen, Li, Du and Mou, `f-divergence minimization for sequence-level
    knowledge distillation <https://arxiv.org/abs/2307.15190>`_, 2023; Ko et
    al., `DistiLLM <https://arxiv.org/abs/2402.03898>`_, 2024.
  """
  student, teacher, _ = log_probs_at_temperature(
    student_logits, teacher_logits, temperature
  )
  difference = jnp.exp(student) - jnp.exp(teacher)
  values = 0.5 * jnp.sum(numerics.safe_abs(difference), axis=-1)
  return reduce(values, reduction, weights=weights, where=where)
