"""GRPO over a batch of completions sharded across devices.

Each device holds a slice of the completions (axis 0 of every per-completion
and per-token array; a completion is never split over time). The per-token
and per-completion maths are those of :func:`jaxloss.grpo_loss`
(:mod:`jaxloss._core.policy`); only the reduction is global.
"""

from __future__ import annotations

import jax
from jax.typing import ArrayLike

from jaxloss._core import ring, value_checks
from jaxloss._core.loss import loss
from jaxloss._core.policy import (
  GRPOLossType,
  ImportanceSamplingLevel,
  TokenAveraging,
  grpo_terms,
)
from jaxloss._core.reduction import Reduction
from jaxloss._core.ring import AxisName
from jaxloss.distributed._reduction import global_reduce

__all__ = ["grpo_loss"]


@loss(
  **{
    arg: value_checks.bounded(high=0, mask="completion_mask")
    for arg in ("log_probs", "old_log_probs", "ref_log_probs")
  }
)
def grpo_loss(
  log_probs: ArrayLike,
  old_log_probs: ArrayLike | None,
  advantages: ArrayLike,
  completion_mask: ArrayLike | None = None,
  ref_log_probs: ArrayLike | None = None,
  *,
  axis_name: AxisName,
  loss_type: GRPOLossType | None = None,
  importance_sampling_level: ImportanceSamplingLevel = "token",
  epsilon: ArrayLike | None = None,
  epsilon_high: ArrayLike | None = None,
  delta: ArrayLike | None = None,
  beta: ArrayLike = 0.04,
  use_bias_correction_kl: bool = False,
  max_completion_length: ArrayLike | None = None,
  sapo_temperature_pos: ArrayLike | None = None,
  sapo_temperature_neg: ArrayLike | None = None,
  vespo_k_pos: ArrayLike | None = None,
  vespo_lambda_pos: ArrayLike | None = None,
  vespo_k_neg: ArrayLike | None = None,
  vespo_lambda_neg: ArrayLike | None = None,
  token_averaging: TokenAveraging | None = None,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "mean",
) -> jax.Array:
  r""":func:`jaxloss.grpo_loss` of the global batch of completions, whose
  slices the devices along ``axis_name`` hold.

  .. math::
    \text{mean} = \frac{\sum_{d} \sum_{i \in d} w_i \ell_i}
                       {\sum_{d} \sum_{i \in d} w_i}

  with the per-completion values :math:`\ell_i` and weights :math:`w_i` of
  :func:`jaxloss.grpo_loss` for the ``loss_type`` (for ``"bnpo"``,
  ``"dapo"``, ``"cispo"``, ``"vespo"``, :math:`w_i` counts completion
  :math:`i`'s active tokens): each ``psum`` is over ``axis_name``. So the
  token-mean types divide by the **global** number of active tokens,
  ``"grpo"``/``"sapo"``/``"dr_grpo"``/``"luspo"`` by the global number of
  completions, and the result (value and gradient, ``jax.grad`` taken
  inside or outside ``shard_map``) is the one-device loss on the
  concatenated slices, replicated on every device.

  Args:
    log_probs, old_log_probs, advantages, completion_mask, ref_log_probs:
      this device's slices (axis 0) of :func:`jaxloss.grpo_loss`'s arrays.
    axis_name: the mesh (or pmap) axis, or tuple of axes, the completions
      are sharded over.
    loss_type, importance_sampling_level, epsilon, epsilon_high, delta, beta,
      use_bias_correction_kl, max_completion_length, sapo_temperature_pos,
      sapo_temperature_neg, vespo_k_pos, vespo_lambda_pos, vespo_k_neg,
      vespo_lambda_neg, token_averaging: as :func:`jaxloss.grpo_loss`; the
      same on every device.
    where, weights: this device's slices, as :func:`jaxloss.grpo_loss`.
    reduction: ``"mean"`` (default), ``"sum"`` or ``"batchmean"`` over the
      global batch (replicated), or ``"none"`` (this device's values).

  Returns:
    A scalar, or ``[...]`` this device's per-completion values for
    ``"none"``.

  Matches trl 1.16's ``GRPOTrainer`` across processes (the gradient that
  DDP averages) for ``"grpo"``, ``"sapo"``, ``"dr_grpo"`` and ``"luspo"``
  with equal per-process batches, and for ``"dapo"``, ``"cispo"``,
  ``"vespo"`` (trl divides by the tokens of the whole generation batch over
  the processes). trl's ``"bnpo"`` divides each process's sum by its own
  tokens (its docs: "results may slightly vary depending on the local batch
  size"); here ``"bnpo"`` is ``"dapo"``: the one-device loss on the global
  batch.

  >>> import jax, jax.numpy as jnp
  >>> import jaxloss, jaxloss.distributed as jd
  >>> mesh = jax.make_mesh((1,), ("data",))  # one device here; any number
  >>> logp = jnp.log(jnp.array([[0.5, 0.5, 1.0], [0.4, 1.0, 1.0]]))
  >>> mask = jnp.array([[1, 1, 0], [1, 1, 1]])
  >>> adv = jnp.array([0.7, -0.7])
  >>> loss = jax.jit(jax.shard_map(
  ...     lambda x, m, a: jd.grpo_loss(
  ...         x, None, a, m, axis_name="data", loss_type="dapo"),
  ...     mesh=mesh, in_specs=jax.P("data"), out_specs=jax.P()))
  >>> data = jax.device_put(
  ...     (logp, mask, adv), jax.NamedSharding(mesh, jax.P("data")))
  >>> print(f"{loss(*data):.6f}")
  0.140000
  >>> one = jaxloss.grpo_loss(
  ...     logp, None, adv, mask, loss_type="dapo", reduction="mean")
  >>> print(f"{one:.6f}")
  0.140000

  References:
    See :func:`jaxloss.grpo_loss`.
  """
  ring.axis_size(axis_name)
  values, weights, where = grpo_terms(
    log_probs,
    old_log_probs,
    advantages,
    completion_mask,
    ref_log_probs,
    loss_type=loss_type,
    importance_sampling_level=importance_sampling_level,
    epsilon=epsilon,
    epsilon_high=epsilon_high,
    delta=delta,
    beta=beta,
    use_bias_correction_kl=use_bias_correction_kl,
    max_completion_length=max_completion_length,
    sapo_temperature_pos=sapo_temperature_pos,
    sapo_temperature_neg=sapo_temperature_neg,
    vespo_k_pos=vespo_k_pos,
    vespo_lambda_pos=vespo_lambda_pos,
    vespo_k_neg=vespo_k_neg,
    vespo_lambda_neg=vespo_lambda_neg,
    token_averaging=token_averaging,
    where=where,
    weights=weights,
  )
  return global_reduce(values, reduction, where, weights, axis_name)
