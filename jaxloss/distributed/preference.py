"""Preference losses over a batch sharded across devices: KTO, whose
reference point is a mean over the global batch."""

from __future__ import annotations

import jax
from jax.typing import ArrayLike

from jaxloss._core import ring
from jaxloss._core.loss import loss
from jaxloss._core.reduction import Reduction
from jaxloss._core.ring import AxisName
from jaxloss.distributed._reduction import global_reduce
from jaxloss.preference import kto as kto_lib

__all__ = ["kto_loss"]


@loss(**kto_lib.RULES)
def kto_loss(
  policy_logps: ArrayLike,
  reference_logps: ArrayLike,
  policy_kl_logps: ArrayLike | None,
  reference_kl_logps: ArrayLike | None,
  desirable: ArrayLike,
  *,
  axis_name: AxisName,
  beta: ArrayLike = 0.1,
  desirable_weight: ArrayLike = 1.0,
  undesirable_weight: ArrayLike = 1.0,
  loss_type: kto_lib.KtoLossType = "kto",
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: Reduction = "mean",
) -> jax.Array:
  r"""KTO over the global batch: :func:`jaxloss.kto_loss` with its reference
  point's mean taken over every device along ``axis_name``.

  .. math::
    z_0 = \max\Big(0, \frac{\operatorname{psum}\big(\sum_{j\ \text{kept}}
    (\log\pi(y'_j) - \log\pi^\text{ref}(y'_j))\big)}
    {\operatorname{psum}(\#\text{kept})}\Big)

  (gradient stopped), then each completion's value as in
  :func:`jaxloss.kto_loss`.

  Args:
    policy_logps, reference_logps, policy_kl_logps, reference_kl_logps,
      desirable: ``[b]`` (or ``[b, ...]``) this device's slices, as in
      :func:`jaxloss.kto_loss`.
    axis_name: the mesh (or pmap) axis, or tuple of axes, the batch is
      sharded over.
    beta, desirable_weight, undesirable_weight, loss_type: as in
      :func:`jaxloss.kto_loss`, the same on every device.
    where: optional mask of this device's completions (none of a masked one
      reaches the loss or the reference point).
    weights: optional per-completion weights of this device's completions.
    reduction: see :func:`jaxloss.reduce`, over the global batch; default
      ``"mean"``; ``"none"`` returns this device's per-completion values.

  Returns:
    A scalar, replicated (this device's ``[b]`` values for ``"none"``).

  Equals :func:`jaxloss.kto_loss` on the concatenated global batch, value
  and gradients. trl 1.16's ``KTOTrainer`` instead averages the processes'
  own means (``gather_for_metrics(kl).mean()``), which weighs a process by
  1 rather than by its number of completions: the two agree when every
  device holds equally many kept completions.

  >>> import jax, jax.numpy as jnp, jaxloss, jaxloss.distributed as jd
  >>> mesh = jax.make_mesh((1,), ("data",))  # one device here; any number works
  >>> logps = (jnp.array([-10.0, -12.0]), jnp.array([-11.0, -11.0]),
  ...          jnp.array([-19.0, -21.0]), jnp.array([-20.0, -20.0]))
  >>> desirable = jnp.array([True, False])
  >>> loss = jax.jit(jax.shard_map(
  ...     lambda *a: jd.kto_loss(*a, axis_name="data", beta=1.0),
  ...     mesh=mesh, in_specs=jax.P("data"), out_specs=jax.P()))
  >>> split = jax.NamedSharding(mesh, jax.P("data"))
  >>> print(f"{loss(*jax.device_put((*logps, desirable), split)):.6f}")
  0.268941
  >>> one = jaxloss.kto_loss(*logps, desirable, beta=1.0, reduction="mean")
  >>> print(f"{one:.6f}")
  0.268941

  References:
    Ethayarajh et al., `KTO: Model Alignment as Prospect Theoretic
    Optimization <https://arxiv.org/abs/2402.01306>`_, 2024.
  """
  inputs = kto_lib.check_inputs(
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
  ring.axis_size(axis_name)
  if inputs.kl_ratio is None:
    point: jax.Array | float = 0.0
  else:
    total, count = kto_lib.kl_sums(inputs.kl_ratio, inputs.keep)
    point = kto_lib.reference_point(
      jax.lax.psum(total, axis_name), jax.lax.psum(count, axis_name)
    )
  values = kto_lib.values(
    inputs, point, beta, desirable_weight, undesirable_weight
  )
  return global_reduce(values, reduction, inputs.keep, weights, axis_name)
