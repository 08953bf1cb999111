"""Distillation from a teacher stored as its top-k tokens."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss._core import checks, labels, numerics, value_checks
from jaxloss._core.loss import loss
from jaxloss._core.reduction import Reduction, reduce
from jaxloss.distillation.divergences import (
  kl_terms,
)


def _duplicates(indices: jax.Array, support: jax.Array) -> jax.Array:
  """``[...]``: whether two slots of the teacher's support (``support``,
  ``[..., k]``) hold the same index (a ``k × k`` comparison)."""
  same = indices[..., :, None] == indices[..., None, :]
  both = support[..., :, None] & support[..., None, :]
  k = indices.shape[-1]
  later = jnp.triu(jnp.ones((k, k), bool), 1)
  later = later.reshape((1,) * (indices.ndim - 1) + (k, k))
  return jnp.any(same & both & later, axis=(-2, -1))


@loss(
  teacher_top_indices=value_checks.class_index("student_logits", None),
  teacher_top_log_probs=value_checks.log_probabilities,
)
def sparse_kd_loss(
  student_logits: ArrayLike,
  teacher_top_indices: ArrayLike,
  teacher_top_log_probs: ArrayLike,
  *,
  temperature: ArrayLike = 1.0,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""Knowledge distillation from a teacher stored as its top-k tokens and
  their log-probabilities (offline distillation of a large teacher).

  .. math::
    \ell = T^2 \sum_{j=1}^{k} \tilde p_j
      \big(\log \tilde p_j - \log p_{s, i_j}\big), \qquad
    \log \tilde p_j = \log p_{t,j} - \log \sum_{j'} p_{t,j'}, \qquad
    \log p_s = \operatorname{log\_softmax}(s / T)

  The forward KL :math:`KL(\tilde p_t \| p_s)` over the teacher's top-k
  support :math:`i_1 \dots i_k`, with the teacher **renormalised** over its
  k tokens (the stored probabilities sum to less than 1; the mass outside
  the top-k is dropped, not spread) and the student's log-probabilities
  taken from the **full** vocabulary (its log-sum-exp over every token, so
  the value is not a KL between two distributions on the k tokens: it also
  pushes the student's mass outside the support down). The temperature
  divides the student's logits only; the stored teacher log-probabilities
  are used as given, so compute them at the same temperature. The result is
  scaled by :math:`T^2`, like :func:`kd_loss`. With all of the teacher's
  mass inside its top-k it equals :func:`kd_loss`.

  The teacher's log-probabilities carry no gradient (stopped). A ``-inf``
  teacher log-probability (a slot left empty when fewer than k tokens are
  kept) contributes 0 with finite gradients; a token with every slot
  ``-inf`` gives 0. Indices follow the library's label rule: an index
  outside ``[0, vocab)`` makes its token NaN (dropped, with finite gradients,
  when ``where`` masks the token out; :func:`jaxloss.checked` reports it),
  never another token's value. Duplicate indices (two slots of positive
  teacher probability naming the same token) are an error of the same kind
  (NaN): the top-k of a distribution names each token once, and a duplicate
  would count the student's probability twice. Empty (``-inf``) slots may
  repeat an index.

  No packaged reference implementation: tested against its definition in
  float64. trl 1.16's server distillation
  (``trl.experimental.server_distillation``) is a different loss: it
  renormalises the student too over a top-1 support (or adds a tail
  bucket for the rest of the mass).

  Args:
    student_logits: ``[..., vocab]`` logits of the student.
    teacher_top_indices: ``[..., k]`` integer token indices of the teacher's
      top-k.
    teacher_top_log_probs: ``[..., k]`` the teacher's log-probabilities at
      those indices (at the temperature; ``-inf`` for an empty slot).
    temperature: :math:`T > 0`, divides the student's logits; may be traced.
    where: ``[...]`` per-token mask (e.g. ``labels != -100``).
    weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.

  Returns:
    ``[...]`` (one value per token), or a scalar for ``"sum"``, ``"mean"``
    and ``"batchmean"``.

  >>> import jax.numpy as jnp, jaxloss
  >>> student = jnp.array([[1.0, 0.0, -1.0, 0.5]])
  >>> indices = jnp.array([[1, 3]])
  >>> log_probs = jnp.log(jnp.array([[0.6, 0.2]]))
  >>> jaxloss.sparse_kd_loss(student, indices, log_probs)
  Array([1.0592...], dtype=float32)

  References:
    Hinton, Vinyals and Dean, `Distilling the knowledge in a neural network
    <https://arxiv.org/abs/1503.02531>`_, 2015.
  """
  student = checks.as_float("student_logits", student_logits)
  checks.min_rank("student_logits", student, 1)
  indices = checks.as_labels("teacher_top_indices", teacher_top_indices)
  teacher = checks.as_float("teacher_top_log_probs", teacher_top_log_probs)
  checks.same_shape(teacher_top_indices=indices, teacher_top_log_probs=teacher)
  checks.shape(
    "teacher_top_indices",
    indices,
    student.shape[:-1] + indices.shape[-1:],
  )
  checks.positive("temperature", temperature)
  temperature = checks.scalar("temperature", temperature)
  vocab = student.shape[-1]
  teacher = jax.lax.stop_gradient(teacher)
  support = ~jnp.isneginf(teacher)
  normaliser = jax.nn.logsumexp(
    jnp.where(support, teacher, -jnp.inf), axis=-1, keepdims=True
  )
  empty = jnp.isneginf(normaliser)  # every slot -inf: the token gives 0
  teacher = teacher - jnp.where(empty, 0, normaliser)
  student = numerics.log_softmax_at_temperature(student, temperature)
  picked = jnp.take_along_axis(student, labels.clipped(indices, vocab), axis=-1)
  values = jnp.square(temperature) * jnp.sum(kl_terms(teacher, picked), -1)
  ok = jnp.all(labels.valid(indices, vocab), axis=-1)
  ok = ok & ~_duplicates(indices, support)
  values = jnp.where(ok, values, jnp.asarray(jnp.nan, values.dtype))
  return reduce(values, reduction, weights=weights, where=where)
