"""Values and gradients of jaxloss.routing (load balancing, router z-loss)
against transformers 5.25's MoE auxiliary losses (called, torch float64,
gradients by autograd) and float64 NumPy transcriptions of flaxformer's and
Megatron-core's (each citing its repository, file and function).

The shared properties (jit, vmap, bf16, edge cases, errors, …) run over
tests/cases/routing.py in tests/test_properties.py; the sharded losses run
on 8 simulated devices in tests/distributed_checks.py ("routing").
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from transformers.models.mixtral import modeling_mixtral
from transformers.models.switch_transformers import (
  modeling_switch_transformers as switch,
)

import jaxloss
from jaxloss.testing import assert_close

F64 = dict(rtol=1e-10, atol=1e-12)
# transformers' Mixtral load_balancing_loss_func accumulates its counts and
# probability sums in float32 buffers whatever the input dtype (and casts
# the probabilities with .float()), so it agrees to float32 rounding only.
MIXTRAL = dict(rtol=2e-6, atol=1e-7)


def _softmax(z):
  z = np.exp(z - z.max(-1, keepdims=True))
  return z / z.sum(-1, keepdims=True)


def _routing(seed, groups, tokens, experts, k):
  """float64 router logits, probabilities and top-k indices."""
  z = np.random.default_rng(seed).normal(size=(groups, tokens, experts))
  probs = _softmax(z)
  top = np.argsort(-probs, axis=-1)[..., :k]
  return z, probs, top


# --------------------------------------------------------------------------- #
# transcriptions (float64 NumPy)


def _flaxformer_load_balancing(router_probs, expert_indices):
  """google/flaxformer, flaxformer/architectures/moe/routing.py,
  ``_load_balancing_loss`` (commit 399ea3a), in float64."""
  num_experts = router_probs.shape[-1]
  expert_mask = np.eye(num_experts, dtype=np.int64)[expert_indices]
  expert_mask = expert_mask.max(axis=-2)
  tokens_per_group_and_expert = expert_mask.mean(axis=-2)
  router_prob_per_group_and_expert = router_probs.mean(axis=-2)
  return (
    np.mean(tokens_per_group_and_expert * router_prob_per_group_and_expert)
    * num_experts**2
  )


def _flaxformer_z_loss(router_logits):
  """google/flaxformer, flaxformer/architectures/moe/routing.py,
  ``_router_z_loss`` (commit 399ea3a), in float64."""
  num_groups, tokens_per_group, _ = router_logits.shape
  m = router_logits.max(-1, keepdims=True)
  log_z = (m + np.log(np.exp(router_logits - m).sum(-1, keepdims=True)))[..., 0]
  return np.sum(log_z**2) / (num_groups * tokens_per_group)


def _megatron_load_balancing(probs, routing_map, topk, padding_mask=None):
  """NVIDIA/Megatron-LM, megatron/core/transformer/moe/moe_utils.py,
  ``switch_load_balancing_loss_func`` (non-fused path, coefficient 1) with
  ``tokens_per_expert`` and ``total_num_tokens`` as
  ``get_tokens_per_expert_and_token_count`` gives them on one rank: counts
  of the kept tokens' routing map and the kept-token count."""
  num_experts = probs.shape[-1]
  if padding_mask is not None:
    probs = probs * padding_mask[:, None]
    routing_map = routing_map * padding_mask[:, None]
  tokens_per_expert = routing_map.sum(0)
  total_num_tokens = tokens_per_expert.sum() / topk
  aggregated_probs_per_expert = probs.sum(0)
  return np.sum(aggregated_probs_per_expert * tokens_per_expert) * (
    num_experts / (topk * total_num_tokens * total_num_tokens)
  )


def _megatron_z_loss(logits, padding_mask):
  """NVIDIA/Megatron-LM, megatron/core/transformer/moe/moe_utils.py,
  ``z_loss_func`` (coefficient 1); ``padding_mask`` True = padding."""
  m = logits.max(-1, keepdims=True)
  logsum = (m + np.log(np.exp(logits - m).sum(-1, keepdims=True)))[..., 0]
  valid = ~padding_mask
  return np.sum(logsum**2 * valid) / max(valid.sum(), 1.0)


# --------------------------------------------------------------------------- #
# jaxloss in float64


def _jax_value_and_grad(fn, x, **kwargs):
  with jax.enable_x64(True):
    step = jax.jit(jax.value_and_grad(lambda x: fn(x, **kwargs)))
    value, grad = step(jnp.asarray(x, jnp.float64))
    return float(value), np.asarray(grad)


def _torch_value_and_grad(fn, x, *args, **kwargs):
  t = torch.tensor(x, dtype=torch.float64, requires_grad=True)
  value = fn(t, *args, **kwargs)
  (grad,) = torch.autograd.grad(value, t)
  return value.item(), grad.numpy()


# --------------------------------------------------------------------------- #
# load balancing


def test_load_balancing_equals_switch_transformers_and_flaxformer():
  # [groups, tokens, E] with top-1 ([G, T] indices) and top-2; tokens a
  # power of 2 (transformers casts the dispatch mask to float32 before its
  # mean: k/T exact). Value and gradient with respect to the probabilities.
  for seed, (groups, tokens, experts, k) in enumerate(
    [(1, 8, 4, 1), (3, 16, 8, 2), (2, 8, 5, 3), (4, 32, 6, 2)]
  ):
    _, probs, top = _routing(seed, groups, tokens, experts, k)
    indices = top[..., 0] if k == 1 else top
    got, got_grad = _jax_value_and_grad(
      jaxloss.load_balancing_loss,
      probs,
      expert_indices=indices,
      num_experts=experts,
    )
    want, want_grad = _torch_value_and_grad(
      switch.load_balancing_loss_func, probs, torch.tensor(indices)
    )
    what = f"G={groups} T={tokens} E={experts} k={k}"
    assert_close(got, want, **F64, what=f"switch value, {what}")
    assert_close(got_grad, want_grad, **F64, what=f"switch grad, {what}")
    flax = _flaxformer_load_balancing(probs, top)
    assert_close(got, flax, **F64, what=f"flaxformer value, {what}")
    # flaxformer's gradient (the dispatch mask is constant): E·f_{g,e}/(G·T).
    routed = np.eye(experts)[top].max(-2)
    f = routed.mean(-2, keepdims=True)
    assert_close(
      got_grad,
      np.broadcast_to(experts * f / (groups * tokens), probs.shape),
      **F64,
      what=f"flaxformer grad, {what}",
    )


def test_mixtral_pools_the_tokens_and_matches_with_flattened_inputs():
  # transformers' Mixtral load_balancing_loss_func: gate logits per layer
  # [batch·seq, E], its own top-k, an attention mask [batch, seq]. jaxloss
  # on every (layer, token) pooled into one group, where = the mask
  # repeated per layer, equals it (value and gradient w.r.t. the logits,
  # float32 rounding: see MIXTRAL). Without a mask and with one layer it
  # equals Switch / flaxformer on [1, tokens, E] (they agree in value).
  batch, seq, experts, k, layers = 2, 8, 6, 2, 3
  rng = np.random.default_rng(7)
  z = rng.normal(size=(layers, batch * seq, experts))
  mask = np.ones((batch, seq), bool)
  mask[0, 5:] = False
  mask[1, 7:] = False

  def jax_loss(z, where):
    probs = jax.nn.softmax(z, axis=-1)
    _, top = jax.lax.top_k(probs, k)
    return jaxloss.load_balancing_loss(
      probs.reshape(-1, experts),
      top.reshape(-1, k),
      num_experts=experts,
      where=where,
    )

  for label, attention_mask in (("no mask", None), ("mask", mask)):
    where = None if attention_mask is None else np.tile(mask.reshape(-1), 3)
    got, got_grad = _jax_value_and_grad(jax_loss, z, where=where)
    want, want_grad = _torch_value_and_grad(
      lambda t: modeling_mixtral.load_balancing_loss_func(
        tuple(t),
        experts,
        k,
        None if attention_mask is None else torch.tensor(attention_mask),
      ),
      z,
    )
    assert_close(got, want, **MIXTRAL, what=f"mixtral value, {label}")
    assert_close(got_grad, want_grad, **MIXTRAL, what=f"mixtral grad, {label}")
  # One layer, no mask: Mixtral = Switch = flaxformer = jaxloss.
  probs = _softmax(z[:1])
  top = np.argsort(-probs, axis=-1)[..., :k]
  mixtral = modeling_mixtral.load_balancing_loss_func(
    (torch.tensor(z[0]),), experts, k
  ).item()
  flax = _flaxformer_load_balancing(probs, top)
  st = switch.load_balancing_loss_func(
    torch.tensor(probs), torch.tensor(top)
  ).item()
  assert_close(st, flax, **F64, what="switch = flaxformer")
  assert_close(mixtral, flax, **MIXTRAL, what="mixtral = flaxformer")
  # Groups (per-layer losses, averaged) are not Mixtral's pooled value.
  grouped = _jax_value_and_grad(jax_loss, z, where=None)[0]
  per_layer = float(
    np.mean(
      [
        _flaxformer_load_balancing(
          _softmax(z[i : i + 1]),
          np.argsort(-_softmax(z[i : i + 1]), axis=-1)[..., :k],
        )
        for i in range(layers)
      ]
    )
  )
  assert abs(per_layer - grouped) > 1e-3 * grouped, (per_layer, grouped)


def test_megatron_divides_by_k_and_drops_padding_alike():
  # Megatron-core's f sums to 1 (divided by k): jaxloss / k equals it, also
  # with its padding mask (padding tokens out of the counts and the means).
  for seed, (tokens, experts, k) in enumerate([(12, 4, 1), (10, 8, 2)]):
    _, probs, top = _routing(seed + 10, 1, tokens, experts, k)
    probs, top = probs[0], top[0]
    keep = np.random.default_rng(seed).random(tokens) < 0.7
    keep[0] = True
    routing_map = np.eye(experts)[top].max(-2)
    for where in (None, keep):
      got, _ = _jax_value_and_grad(
        jaxloss.load_balancing_loss,
        probs,
        expert_indices=top,
        num_experts=experts,
        where=where,
      )
      want = _megatron_load_balancing(probs, routing_map, k, where)
      assert_close(float(got) / k, want, **F64, what=f"megatron k={k}")


def test_where_drops_tokens_and_all_padding_groups():
  # A masked token is the same as a token that is not there; a group whose
  # tokens are all padding is left out of the mean over groups (gradient 0
  # there, finite everywhere); no token at all: 0 with a zero gradient; a
  # NaN in a padding token reaches neither value nor gradient.
  _, probs, top = _routing(3, 3, 8, 5, 2)
  keep = np.ones((3, 8), bool)
  keep[0, 5:] = False
  keep[1] = False  # all padding
  keep[2, :2] = False
  poisoned = probs.copy()
  poisoned[~keep] = np.nan
  value, grad = _jax_value_and_grad(
    jaxloss.load_balancing_loss,
    poisoned,
    expert_indices=top,
    num_experts=5,
    where=keep,
  )
  g0 = _flaxformer_load_balancing(probs[:1, :5], top[:1, :5])
  g2 = _flaxformer_load_balancing(probs[2:, 2:], top[2:, 2:])
  assert_close(value, (g0 + g2) / 2, **F64, what="where = slicing")
  assert np.all(np.isfinite(grad)) and np.all(grad[~keep] == 0)
  none, grad = _jax_value_and_grad(
    jaxloss.load_balancing_loss,
    poisoned,
    expert_indices=top,
    num_experts=5,
    where=np.zeros_like(keep),
  )
  assert none == 0.0 and np.all(grad == 0)


def test_top1_indices_and_invalid_indices():
  _, probs, top = _routing(4, 2, 8, 4, 1)
  bad = top.copy()
  bad[1, 3, 0] = 4  # out of range: NaN (jaxloss's label rule) ...
  negative = bad.copy()
  negative[1, 3, 0] = -1
  keep = np.ones((2, 8), bool)
  keep[1, 3] = False  # ... unless the token is padding

  @jax.jit
  def values(probs):
    def lb(indices, where=None):
      return jaxloss.load_balancing_loss(
        probs, indices, num_experts=4, where=where
      )

    return lb(top), lb(top[..., 0]), lb(bad), lb(negative), lb(negative, keep)

  a, b, too_large, negative, masked = values(probs)
  assert_close(a, b, rtol=0, atol=0, what="[..., T] = [..., T, 1]")
  assert np.isnan(too_large) and np.isnan(negative)
  assert np.isfinite(masked)


def test_load_balancing_errors_name_the_argument():
  probs = np.full((2, 8, 4), 0.25, np.float32)
  top = np.zeros((2, 8, 2), np.int32)
  one = np.ones(8, bool)
  cases = [  # (probs, indices, keywords, the argument the error names)
    (probs, top, dict(num_experts=5), "num_experts"),
    (probs, top, dict(num_experts=4.0), "num_experts"),
    (probs, top[:, :7], dict(num_experts=4), "`expert_indices`"),
    (probs, top[..., :0], dict(num_experts=4), "`expert_indices`"),
    (probs[0, 0], top[0, 0], dict(num_experts=4), "`router_probs`"),
    (probs, top, dict(num_experts=4, where=one), "`where`"),
  ]
  for p, i, kwargs, arg in cases:
    with pytest.raises(ValueError, match="load_balancing_loss") as error:
      jaxloss.load_balancing_loss(p, i, **kwargs)
    assert arg in str(error.value), str(error.value)
  with pytest.raises(TypeError, match="`expert_indices`"):
    jaxloss.load_balancing_loss(probs, top.astype(np.float32), num_experts=4)


# --------------------------------------------------------------------------- #
# z-loss


def test_router_z_loss_equals_switch_transformers_flaxformer_megatron():
  for seed, shape in enumerate([(1, 8, 4), (3, 5, 8), (2, 7, 3)]):
    z = 3 * np.random.default_rng(seed).normal(size=shape)
    got, got_grad = _jax_value_and_grad(jaxloss.router_z_loss, z)
    want, want_grad = _torch_value_and_grad(switch.router_z_loss_func, z)
    assert_close(got, want, **F64, what=f"switch value {shape}")
    assert_close(got_grad, want_grad, **F64, what=f"switch grad {shape}")
    assert_close(got, _flaxformer_z_loss(z), **F64, what=f"flaxformer {shape}")
    # Megatron's padding mask is this where's negation, over the pooled tokens.
    keep = np.random.default_rng(seed).random(shape[:-1]) < 0.6
    masked, _ = _jax_value_and_grad(jaxloss.router_z_loss, z, where=keep)
    want = _megatron_z_loss(z.reshape(-1, shape[-1]), ~keep.reshape(-1))
    assert_close(masked, want, **F64, what=f"megatron padding {shape}")


def test_router_z_loss_padding_differs_from_flaxformer_zeroed_logits():
  # flaxformer's ignore_padding_tokens zeroes the padding tokens' logits
  # and keeps them in the mean: each adds log(E)². where= drops them; a NaN
  # in a padding token reaches neither value nor gradient.
  z = np.random.default_rng(5).normal(size=(2, 6, 4))
  keep = np.ones((2, 6), bool)
  keep[0, 4:] = False
  keep[1, 5:] = False
  flax = _flaxformer_z_loss(z * keep[..., None])
  kept = keep.sum()
  poisoned = np.where(keep[..., None], z, np.nan)
  value, grad = _jax_value_and_grad(jaxloss.router_z_loss, poisoned, where=keep)
  assert_close(
    flax,
    (value * kept + np.log(4) ** 2 * (keep.size - kept)) / keep.size,
    **F64,
    what="flaxformer = kept tokens + log(E)² per padding token",
  )
  assert np.all(np.isfinite(grad)) and np.all(grad[~keep] == 0)
  none, grad = _jax_value_and_grad(
    jaxloss.router_z_loss, z, where=np.zeros_like(keep)
  )
  assert none == 0.0 and np.all(grad == 0)
