"""Distillation losses between a student's and a teacher's dense logits."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def _kl_terms(log_p: jax.Array, log_q: jax.Array) -> jax.Array:
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
  return jnp.sum(_kl_terms(log_p, log_q), axis=-1)


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
  dtype = student_log_probs.dtype
  log_mixture = jnp.logaddexp(
    student_log_probs + jnp.log1p(jnp.asarray(-beta, dtype)),
    teacher_log_probs + jnp.log(jnp.asarray(beta, dtype)),
  )
  return beta * _kl(teacher_log_probs, log_mixture) + (1 - beta) * _kl(
    student_log_probs, log_mixture
  )
