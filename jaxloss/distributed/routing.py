"""Mixture-of-experts router losses over tokens sharded across devices:
Switch Transformer's load-balancing loss and ST-MoE's router z-loss, with
their token sums ``psum``-combined over the token axis.

The maths is the one-device losses' own (:mod:`jaxloss.routing`'s bodies
take the axis name), so each equals its one-device loss on the concatenated
global batch, in value and in gradient. Communication per call: ``E + 2``
floats per group for the load-balancing loss (dispatch counts, probability
sums, kept tokens, invalid indices), 2 floats for the z-loss.
"""

from __future__ import annotations

import jax
from jax.typing import ArrayLike

from jaxloss._core import ring, value_checks
from jaxloss._core.loss import loss
from jaxloss._core.ring import AxisName
from jaxloss.distributed._reduction import global_reduce
from jaxloss.routing import router

__all__ = ["load_balancing_loss", "router_z_loss"]


@loss(
  router_probs=value_checks.unit_interval,
  expert_indices=value_checks.class_index("router_probs", None),
)
def load_balancing_loss(
  router_probs: ArrayLike,
  expert_indices: ArrayLike,
  *,
  num_experts: int,
  axis_name: AxisName,
  where: ArrayLike | None = None,
) -> jax.Array:
  r"""Switch Transformer's load-balancing loss over the global batch:
  :func:`jaxloss.load_balancing_loss` with each group's dispatch counts,
  probability sums and kept-token count summed over every device along
  ``axis_name``.

  .. math::
    f_{g,e} = \frac{\operatorname{psum}\big(\sum_t
    \mathbb{1}[e \in \operatorname{top\text{-}k}(t)]\big)}
    {\operatorname{psum}(T_g)}, \quad
    P_{g,e} = \frac{\operatorname{psum}\big(\sum_t p_{t,e}\big)}
    {\operatorname{psum}(T_g)}

  then the one-device loss of :math:`f` and :math:`P`.

  Args:
    router_probs: ``[..., tokens, num_experts]`` this device's slice of the
      tokens (leading axes are groups: every device holds a slice of the
      tokens of every group).
    expert_indices: ``[..., tokens, k]`` (or ``[..., tokens]``) this
      device's tokens' expert indices.
    num_experts: the number of experts ``E``.
    axis_name: the mesh (or pmap) axis, or tuple of axes, the tokens are
      sharded over.
    where: optional ``[..., tokens]`` mask of this device's tokens; a device
      may keep none of its tokens.

  Returns:
    A scalar, replicated.

  Equals :func:`jaxloss.load_balancing_loss` on the global batch (the
  slices concatenated along the token axis), value and gradient, for any
  number of kept tokens per device. Megatron-core's
  ``switch_load_balancing_loss_func`` sums the dispatch counts over its
  sequence- and context-parallel groups alike (and divides by ``k``).
  When whole groups are on each device instead (the group axis sharded),
  call :func:`jaxloss.load_balancing_loss` on each device and average with
  ``jax.lax.pmean``: the same loss when every group keeps a token.

  >>> import jax, jax.numpy as jnp, jaxloss, jaxloss.distributed as jd
  >>> mesh = jax.make_mesh((1,), ("data",))  # one device here; any number works
  >>> probs = jnp.array([[0.7, 0.2, 0.1], [0.6, 0.3, 0.1],
  ...                    [0.1, 0.2, 0.7], [0.2, 0.5, 0.3]])
  >>> top2 = jnp.array([[0, 1], [0, 1], [2, 1], [1, 2]])
  >>> sharded = jd.shard(jd.load_balancing_loss, mesh)  # tokens on "data"
  >>> print(f"{sharded(probs, top2, num_experts=3):.4f}")
  1.9500
  >>> print(f"{jaxloss.load_balancing_loss(probs, top2, num_experts=3):.4f}")
  1.9500

  References:
    Fedus, Zoph and Shazeer, `Switch Transformers: Scaling to Trillion
    Parameter Models with Simple and Efficient Sparsity
    <https://arxiv.org/abs/2101.03961>`_, 2021.
  """
  probs, indices, keep = router.check_balance_inputs(
    router_probs, expert_indices, num_experts, where
  )
  ring.axis_size(axis_name)
  probs, indices, keep = ring.varying((probs, indices, keep), axis_name)
  return router.balance_value(probs, indices, keep, num_experts, axis_name)


@loss
def router_z_loss(
  router_logits: ArrayLike,
  *,
  axis_name: AxisName,
  where: ArrayLike | None = None,
) -> jax.Array:
  r"""ST-MoE's router z-loss over the global batch:
  :func:`jaxloss.router_z_loss` with its sum and its count of kept tokens
  summed over every device along ``axis_name``.

  .. math::
    \mathcal{L} = \frac{\operatorname{psum}\big(\sum_t
    (\log \sum_e e^{z_{t,e}})^2\big)}{\operatorname{psum}(N)}

  Args:
    router_logits: ``[..., tokens, num_experts]`` this device's slice of the
      tokens.
    axis_name: the mesh (or pmap) axis, or tuple of axes, the tokens are
      sharded over.
    where: optional ``[..., tokens]`` mask of this device's tokens; a device
      may keep none of its tokens.

  Returns:
    A scalar, replicated.

  Equals :func:`jaxloss.router_z_loss` on the global batch, value and
  gradient.

  >>> import jax, jax.numpy as jnp, jaxloss, jaxloss.distributed as jd
  >>> mesh = jax.make_mesh((1,), ("data",))
  >>> logits = jnp.array([[2.0, 0.0, -1.0], [0.5, 0.5, 0.5]])
  >>> print(f"{jd.shard(jd.router_z_loss, mesh)(logits):.4f}")
  3.6319

  References:
    Zoph et al., `ST-MoE: Designing Stable and Transferable Sparse Expert
    Models <https://arxiv.org/abs/2202.08906>`_, 2022.
  """
  logits, keep = router.check_logits(router_logits, where)
  ring.axis_size(axis_name)
  logits, keep = ring.varying((logits, keep), axis_name)
  values = router.z_values(logits, keep)
  return global_reduce(values, "mean", keep, None, axis_name)
