"""Kahneman-Tversky Optimization: a preference loss on unpaired completions,
each labelled desirable or undesirable.

The maths is shared with :func:`jaxloss.distributed.kto_loss`, which takes
the KL reference point's mean over the devices of a data axis.
"""

from __future__ import annotations

from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss._core import checks, numerics, value_checks
from jaxloss._core.loss import loss
from jaxloss._core.reduction import Reduction, reduce

__all__ = ["kto_loss"]

KtoLossType = Literal["kto", "apo_zero_unpaired"]
KTO_LOSS_TYPES: tuple[KtoLossType, ...] = ("kto", "apo_zero_unpaired")

RULES = dict(
  policy_logps=value_checks.log_probabilities,
  reference_logps=value_checks.log_probabilities,
  policy_kl_logps=value_checks.log_probabilities,
  reference_kl_logps=value_checks.log_probabilities,
)


class KtoInputs(NamedTuple):
  """The checked inputs: log-ratios, KL-sample log-ratios (``None`` for
  ``"apo_zero_unpaired"``), the desirable mask and the completion mask."""

  ratio: jax.Array
  kl_ratio: jax.Array | None
  desirable: jax.Array
  keep: jax.Array


def check_inputs(
  policy_logps: ArrayLike,
  reference_logps: ArrayLike,
  policy_kl_logps: ArrayLike | None,
  reference_kl_logps: ArrayLike | None,
  desirable: ArrayLike,
  loss_type: str,
  beta: Any,
  desirable_weight: Any,
  undesirable_weight: Any,
  where: ArrayLike | None,
) -> KtoInputs:
  """Options, shapes and dtypes of :func:`kto_loss`'s arguments."""
  checks.option("loss_type", loss_type, KTO_LOSS_TYPES)
  checks.positive("beta", beta)
  checks.nonnegative("desirable_weight", desirable_weight)
  checks.nonnegative("undesirable_weight", undesirable_weight)
  kl_given = (policy_kl_logps is not None, reference_kl_logps is not None)
  if loss_type == "kto" and not all(kl_given):
    raise checks.fail(
      "`policy_kl_logps` and `reference_kl_logps` are required for "
      "loss_type='kto' (the KL reference point)."
    )
  if loss_type == "apo_zero_unpaired" and any(kl_given):
    raise checks.fail(
      "`policy_kl_logps`/`reference_kl_logps` must be None for "
      "loss_type='apo_zero_unpaired' (it has no KL reference point)."
    )
  arrays = dict(policy_logps=policy_logps, reference_logps=reference_logps)
  if policy_kl_logps is not None and reference_kl_logps is not None:
    arrays.update(
      policy_kl_logps=policy_kl_logps, reference_kl_logps=reference_kl_logps
    )
  converted = checks.same_shape_floats(**arrays)
  policy, reference = converted[:2]
  desirable = jnp.asarray(desirable)
  if jnp.issubdtype(desirable.dtype, jnp.integer):
    desirable = desirable != 0
  elif desirable.dtype != jnp.bool_:
    raise checks.fail(
      "argument `desirable` must be a boolean (or 0/1 integer) mask, got "
      f"dtype {desirable.dtype} with shape {desirable.shape}.",
      TypeError,
    )
  checks.shape("desirable", desirable, policy.shape, "that of `policy_logps`")
  keep = (
    jnp.ones(policy.shape, bool)
    if where is None
    else checks.broadcast_mask("where", where, policy.shape, same_rank=True)
  )
  kl_ratio = converted[2] - converted[3] if len(converted) == 4 else None
  return KtoInputs(policy - reference, kl_ratio, desirable, keep)


def kl_sums(kl_ratio: jax.Array, keep: jax.Array) -> tuple[jax.Array, ...]:
  """``(Σ kl_ratio, count)`` over the kept completions (local to a device)."""
  total = jnp.sum(jnp.where(keep, kl_ratio, 0))
  return total, jnp.sum(keep, dtype=kl_ratio.dtype)


def values(
  inputs: KtoInputs,
  reference_point: jax.Array | float,
  beta: Any,
  desirable_weight: Any,
  undesirable_weight: Any,
) -> jax.Array:
  """Each completion's weighted KTO value around ``reference_point``."""
  ratio = inputs.ratio
  b = numerics.like(beta, ratio)
  margin = b * (ratio - reference_point)
  return jnp.where(
    inputs.desirable,
    numerics.like(desirable_weight, ratio) * jax.nn.sigmoid(-margin),
    numerics.like(undesirable_weight, ratio) * jax.nn.sigmoid(margin),
  )


def reference_point(total: jax.Array, count: jax.Array) -> jax.Array:
  """``max(0, total / count)`` (0 for no completion), gradient stopped."""
  return jax.lax.stop_gradient(
    jnp.maximum(numerics.safe_divide(total, count), 0)
  )


@loss(**RULES)
def kto_loss(
  policy_logps: ArrayLike,
  reference_logps: ArrayLike,
  policy_kl_logps: ArrayLike | None,
  reference_kl_logps: ArrayLike | None,
  desirable: ArrayLike,
  *,
  beta: ArrayLike = 0.1,
  desirable_weight: ArrayLike = 1.0,
  undesirable_weight: ArrayLike = 1.0,
  loss_type: KtoLossType = "kto",
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "none",
) -> jax.Array:
  r"""Kahneman-Tversky Optimization (KTO) loss, per completion.

  With :math:`\rho_i = \log\pi(y_i \mid x_i) - \log\pi^\text{ref}(y_i \mid
  x_i)` and the reference point :math:`z_0 = \max\big(0,
  \tfrac1n\sum_j (\log\pi(y'_j \mid x_j) - \log\pi^\text{ref}(y'_j \mid
  x_j))\big)` over the kept completions, gradient stopped (:math:`y'_j` a
  mismatched completion, trl's KL sample):

  .. math::
    \ell_i = \begin{cases}
      \lambda_D \big(1 - \sigma(\beta(\rho_i - z_0))\big) & \text{desirable} \\
      \lambda_U \big(1 - \sigma(\beta(z_0 - \rho_i))\big) & \text{undesirable}
    \end{cases}

  ``loss_type="apo_zero_unpaired"`` is APO-zero for unpaired completions:
  the same with :math:`z_0 = 0` and no KL samples (pass ``None`` for both).

  Args:
    policy_logps: ``[...]`` floating :math:`\log\pi(y \mid x)`, the policy's
      summed log-probability of each completion.
    reference_logps: ``[...]`` the same under the reference model.
    policy_kl_logps: ``[...]`` the policy's log-probability of each KL
      sample (trl pairs each prompt with another example's completion);
      ``None`` for ``"apo_zero_unpaired"``.
    reference_kl_logps: ``[...]`` the same under the reference model.
    desirable: ``[...]`` boolean (or 0/1 integer): whether each completion is
      desirable (trl's ``label``).
    beta: :math:`\beta > 0` (may be traced).
    desirable_weight: :math:`\lambda_D \ge 0` (may be traced).
    undesirable_weight: :math:`\lambda_U \ge 0` (may be traced).
    loss_type: ``"kto"`` or ``"apo_zero_unpaired"`` (static).
    where: boolean mask of ``[...]``: a masked completion takes no part in
      the loss nor in the reference point's mean.
    weights, reduction: see :func:`jaxloss.reduce`; default ``"none"``.
      ``weights`` multiply each completion's value (not the reference point).

  Returns:
    ``[...]`` per-completion loss, or a scalar for ``"sum"``/``"mean"``.

  Matches trl 1.16's ``KTOTrainer._compute_loss`` for both loss types: its
  loss, the mean over the chosen and rejected completions together of the
  weighted values, is ``"mean"`` here. The reference point's mean is over
  every kept completion of the batch (all axes); with data parallelism trl
  averages each process's mean, :func:`jaxloss.distributed.kto_loss` takes
  the mean over the global batch (equal when the processes hold equally many
  completions and nothing is masked).

  >>> import jax.numpy as jnp, jaxloss
  >>> loss = jaxloss.kto_loss(
  ...     jnp.array([-10.0, -12.0]), jnp.array([-11.0, -11.0]),
  ...     jnp.array([-20.0, -20.0]), jnp.array([-20.0, -20.0]),
  ...     jnp.array([True, False]), beta=1.0)
  >>> print([round(float(x), 4) for x in loss])  # z0 = 0: 1 - σ(1), 1 - σ(1)
  [0.2689, 0.2689]

  References:
    Ethayarajh et al., `KTO: Model Alignment as Prospect Theoretic
    Optimization <https://arxiv.org/abs/2402.01306>`_, 2024;
    D'Oosterlinck et al., `Anchored Preference Optimization and Contrastive
    Revisions <https://arxiv.org/abs/2408.06266>`_, 2024 (APO-zero).
  """
  inputs = check_inputs(
    policy_logps,
    reference_logps,
    policy_kl_logps,
    reference_kl_logps,
    desirable,
    loss_type,
    beta,
    desirable_weight,
    undesirable_weight,
    where,
  )
  point = (
    0.0
    if inputs.kl_ratio is None
    else reference_point(*kl_sums(inputs.kl_ratio, inputs.keep))
  )
  out = values(inputs, point, beta, desirable_weight, undesirable_weight)
  return reduce(out, reduction, weights=weights, where=inputs.keep)
