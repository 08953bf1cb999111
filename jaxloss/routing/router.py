"""Auxiliary losses of a mixture-of-experts router: Switch Transformer's
load-balancing loss and ST-MoE's router z-loss.

The loss bodies take an optional ``axis_name``: ``None`` on one device, the
token axis's mesh axis in :mod:`jaxloss.distributed`, where every sum over
the tokens (the per-expert dispatch counts and probability sums, the kept
token counts, the z-loss's sum and count) is ``psum``-combined, so that the
two share the maths and the sharded loss is the one-device loss of the
global batch.
"""

from __future__ import annotations

import functools
import operator

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss._core import checks, ring, value_checks
from jaxloss._core.loss import loss
from jaxloss._core.reduction import reduce
from jaxloss._core.ring import AxisName

__all__ = ["load_balancing_loss", "router_z_loss"]

# --------------------------------------------------------------------------- #
# load balancing


def check_balance_inputs(
  router_probs: ArrayLike,
  expert_indices: ArrayLike,
  num_experts: int,
  where: ArrayLike | None,
) -> tuple[jax.Array, jax.Array, jax.Array | None]:
  """``(probs [..., T, E], indices [..., T, k], keep [..., T] or None)``."""
  checks.positive_int("num_experts", num_experts)
  probs = checks.as_float("router_probs", router_probs)
  checks.min_rank("router_probs", probs, 2, "[..., tokens, experts]")
  if probs.shape[-1] != num_experts:
    raise checks.fail(
      f"argument `router_probs` of shape {probs.shape} must have "
      f"num_experts={num_experts} entries on its last axis (experts)."
    )
  indices = checks.as_labels("expert_indices", expert_indices)
  if indices.ndim == probs.ndim - 1:  # top-1: [..., tokens]
    indices = indices[..., None]
  checks.shape(
    "expert_indices",
    indices,
    (*probs.shape[:-1], None),
    f"[..., tokens, k] or [..., tokens], matching `router_probs` {probs.shape}",
  )
  if indices.shape[-1] == 0:
    raise checks.fail(
      f"argument `expert_indices` of shape {indices.shape} dispatches no "
      "token (k = 0)."
    )
  keep = None
  if where is not None:
    keep = checks.as_mask("where", where)
    checks.shape("where", keep, probs.shape[:-1], "[..., tokens]")
  return probs, indices, keep


def balance_value(
  probs: jax.Array,
  indices: jax.Array,
  keep: jax.Array | None,
  num_experts: int,
  axis_name: AxisName | None = None,
) -> jax.Array:
  """The mean over groups of ``E · Σ_e f_e P_e``, the token sums taken over
  the devices along ``axis_name`` (``None``: this batch)."""
  # [..., T, E]: whether the token was dispatched to the expert (a token
  # counts once per expert, as flaxformer's max over the k choices); one
  # one-hot per choice, never a [..., T, k, E] array.
  routed = functools.reduce(
    operator.or_,
    [
      jax.nn.one_hot(indices[..., j], num_experts, dtype=jnp.bool_)
      for j in range(indices.shape[-1])
    ],
  )
  invalid = jnp.any((indices < 0) | (indices >= num_experts), axis=-1)
  if keep is None:
    keep = jnp.ones(probs.shape[:-1], bool)
  kept = keep[..., None]
  # Masked tokens are selected out before any sum (a NaN there never reaches
  # the value or the gradient).
  counts = jnp.sum(jnp.where(kept & routed, 1, 0), axis=-2, dtype=probs.dtype)
  prob_sums = jnp.sum(jnp.where(kept, probs, 0), axis=-2)
  tokens = jnp.sum(keep, axis=-1, dtype=probs.dtype)
  bad = jnp.sum(invalid & keep, axis=-1)
  counts, prob_sums, tokens, bad = ring.device_sum(
    (counts, prob_sums, tokens, bad), axis_name
  )
  present = tokens > 0
  n = jnp.where(present, tokens, 1)
  group = num_experts * jnp.sum(
    (counts / n[..., None]) * (prob_sums / n[..., None]), axis=-1
  )
  group = jnp.where(bad > 0, jnp.asarray(jnp.nan, group.dtype), group)
  groups = jnp.sum(present, dtype=probs.dtype)
  return jnp.sum(jnp.where(present, group, 0)) / jnp.maximum(groups, 1)


@loss(
  router_probs=value_checks.unit_interval,
  expert_indices=value_checks.class_index("router_probs", None),
)
def load_balancing_loss(
  router_probs: ArrayLike,
  expert_indices: ArrayLike,
  *,
  num_experts: int,
  where: ArrayLike | None = None,
) -> jax.Array:
  r"""Switch Transformer's auxiliary load-balancing loss of a
  mixture-of-experts router, with top-k dispatch.

  .. math::
    \mathcal{L} = \frac{1}{G}\sum_g E \sum_{e=1}^{E} f_{g,e} P_{g,e},
    \quad f_{g,e} = \frac{1}{T_g}\sum_{t} \mathbb{1}[e \in
    \operatorname{top\text{-}k}(t)], \quad
    P_{g,e} = \frac{1}{T_g}\sum_{t} p_{t,e}

  over the kept tokens :math:`t` of each group :math:`g` (:math:`T_g` of
  them) and the :math:`G` groups that keep at least one token. ``f`` sums
  to ``k`` over the experts; the loss is ``k`` at a perfectly uniform
  router and dispatch, and is minimised by balanced dispatch.

  Args:
    router_probs: ``[..., tokens, num_experts]`` the router's probabilities
      (the softmax of its logits; every expert's, not only the chosen
      ones'). Leading axes are groups.
    expert_indices: ``[..., tokens, k]`` integer indices of the experts
      each token is dispatched to (top-k), or ``[..., tokens]`` for top-1.
      An index outside ``[0, num_experts)`` on a kept token makes its
      group's value, hence the loss, NaN (jaxloss's label rule). Not
      differentiated.
    num_experts: the number of experts ``E`` (a Python int, equal to the
      last axis of ``router_probs``).
    where: optional ``[..., tokens]`` boolean mask; ``False`` marks padding
      tokens, which count in neither ``f`` nor ``P`` nor ``T_g``.

  Returns:
    A scalar: an auxiliary loss, added to the training loss with a small
    coefficient (Switch Transformer's ``α = 0.01``). Its gradient reaches
    ``router_probs`` only (the dispatch counts are constants). A group
    whose tokens are all padding is left out of the mean over groups (it
    has no load to balance); with no kept token anywhere the loss is 0
    with a zero gradient.

  Matches flaxformer's ``_load_balancing_loss`` and transformers'
  SwitchTransformers ``load_balancing_loss_func`` on ``[groups, tokens,
  E]`` inputs without padding: each group's loss is computed on its own
  tokens, then the groups' losses are averaged. transformers'
  Mixtral ``load_balancing_loss_func`` pools every token (of every batch
  row and layer) into one group and computes the top-k itself from the
  gate logits: pass ``router_probs.reshape(-1, E)``,
  ``expert_indices.reshape(-1, k)`` and its attention mask as ``where``
  (flattened, and repeated for each layer) to get its value. Megatron-core's
  ``switch_load_balancing_loss_func`` divides ``f`` by ``k`` (the fraction
  of the dispatches, summing to 1): divide this loss by ``k`` for it.
  flaxformer masks padding by zeroing the padding tokens' probabilities
  before the top-k, so padding still counts in ``T`` and in ``f``; here it
  is dropped.

  >>> import jax.numpy as jnp, jaxloss
  >>> probs = jnp.array([[0.7, 0.2, 0.1], [0.6, 0.3, 0.1],
  ...                    [0.1, 0.2, 0.7], [0.2, 0.5, 0.3]])
  >>> top2 = jnp.array([[0, 1], [0, 1], [2, 1], [1, 2]])
  >>> print(f"{jaxloss.load_balancing_loss(probs, top2, num_experts=3):.4f}")
  1.9500
  >>> keep = jnp.array([True, True, True, False])
  >>> value = jaxloss.load_balancing_loss(probs, top2, num_experts=3,
  ...                                     where=keep)
  >>> print(f"{value:.4f}")
  1.9333

  References:
    Fedus, Zoph and Shazeer, `Switch Transformers: Scaling to Trillion
    Parameter Models with Simple and Efficient Sparsity
    <https://arxiv.org/abs/2101.03961>`_, 2021 (equations 4–6).
  """
  probs, indices, keep = check_balance_inputs(
    router_probs, expert_indices, num_experts, where
  )
  return balance_value(probs, indices, keep, num_experts)


# --------------------------------------------------------------------------- #
# z-loss


def check_logits(
  router_logits: ArrayLike, where: ArrayLike | None
) -> tuple[jax.Array, jax.Array | None]:
  """``(logits [..., T, E], keep [..., T] or None)``."""
  logits = checks.as_float("router_logits", router_logits)
  checks.min_rank("router_logits", logits, 2, "[..., tokens, experts]")
  if logits.shape[-1] == 0:
    raise checks.fail(
      f"argument `router_logits` of shape {logits.shape} has no expert."
    )
  keep = None
  if where is not None:
    keep = checks.as_mask("where", where)
    checks.shape("where", keep, logits.shape[:-1], "[..., tokens]")
  return logits, keep


def z_values(logits: jax.Array, keep: jax.Array | None) -> jax.Array:
  """``logsumexp(logits)²`` per token (padding tokens' logits replaced by 0
  first, so that nothing of theirs reaches a gradient)."""
  if keep is not None:
    logits = jnp.where(keep[..., None], logits, 0)
  return jnp.square(jax.nn.logsumexp(logits, axis=-1))


@loss
def router_z_loss(
  router_logits: ArrayLike, *, where: ArrayLike | None = None
) -> jax.Array:
  r"""ST-MoE's router z-loss: the mean squared log-partition function of the
  router's logits, which keeps them small.

  .. math::
    \mathcal{L} = \frac{1}{N}\sum_{t} \Big(\log \sum_{e=1}^{E}
    e^{z_{t,e}}\Big)^2

  over the :math:`N` kept tokens of every group.

  Args:
    router_logits: ``[..., tokens, num_experts]`` the router's logits
      (leading axes are groups).
    where: optional ``[..., tokens]`` boolean mask; ``False`` marks padding
      tokens, which are dropped (their logits reach neither the value nor
      the gradient).

  Returns:
    A scalar: an auxiliary loss (ST-MoE's coefficient is ``1e-3``); 0, with
    a zero gradient, when no token is kept. Quadratic in the logits: in
    float32, logits up to about ``1e15`` (the sum of the squares must not
    overflow).

  Equals flaxformer's ``_router_z_loss``, transformers' SwitchTransformers
  ``router_z_loss_func`` and Megatron-core's ``z_loss_func`` (which takes a
  padding mask as this ``where``). The mean is over all kept tokens pooled,
  which is the mean of the groups' means when every group keeps as many
  tokens. flaxformer's ``ignore_padding_tokens`` instead zeroes the padding
  tokens' logits and keeps them in the mean, so each padding token adds
  ``log(E)²``: pass ``where`` to drop them.

  >>> import jax.numpy as jnp, jaxloss
  >>> logits = jnp.array([[[2.0, 0.0, -1.0], [0.5, 0.5, 0.5]]])
  >>> print(f"{jaxloss.router_z_loss(logits):.4f}")
  3.6319
  >>> keep = jnp.array([[True, False]])
  >>> print(f"{jaxloss.router_z_loss(logits, where=keep):.4f}")
  4.7082

  References:
    Zoph et al., `ST-MoE: Designing Stable and Transferable Sparse Expert
    Models <https://arxiv.org/abs/2202.08906>`_, 2022 (equation 5).
  """
  logits, keep = check_logits(router_logits, where)
  return reduce(z_values(logits, keep), "mean", where=keep)
