"""Private helpers shared by :mod:`jaxloss.rl` and :mod:`jaxloss.preference`:
bounded ratios, the clipped surrogate, data inputs and token masks.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxloss._core import checks, numerics


def bounded_exp(x: jax.Array) -> jax.Array:
  """``exp(min(x, log(max) / 2))``: equal to ``exp(x)`` up to about 1.8e19 in
  float32 (1e154 in float64), and finite (gradient 0) beyond, so that a ratio
  times an advantage never overflows to ``inf`` (and ``0 * inf`` never gives a
  NaN gradient)."""
  bound = 0.5 * float(np.log(jnp.finfo(x.dtype).max))
  return jnp.exp(jnp.minimum(x, bound))


def clipped_surrogate(
  log_ratio: jax.Array, advantages: jax.Array, eps_low, eps_high
) -> jax.Array:
  """``-min(r A, clip(r, 1 - eps_low, 1 + eps_high) A)`` with ``r = exp(log_ratio)``."""
  ratio = bounded_exp(log_ratio)
  clipped = jnp.clip(ratio, 1 - eps_low, 1 + eps_high)
  return -jnp.minimum(ratio * advantages, clipped * advantages)


def k3_kl(log_probs: jax.Array, ref_log_probs: jax.Array) -> jax.Array:
  """Schulman's k3 estimate of KL(π‖π_ref) per token:
  ``exp(ref - logp) - (ref - logp) - 1`` (>= 0)."""
  delta = ref_log_probs - log_probs
  return bounded_exp(delta) - delta - 1


def data(name: str, arg: str, x, like: jax.Array, shape) -> jax.Array:
  """A numeric input that is data, not differentiated in the loss (rewards,
  discounts, advantages, returns): cast to ``like``'s dtype, shape checked."""
  x = checks.as_targets(name, arg, x, like)
  checks.shape(name, arg, x, tuple(shape))
  return x


def float_like(name: str, arg: str, x, like: jax.Array, shape) -> jax.Array:
  """A floating (differentiable) input of ``shape``, cast to ``like``'s dtype."""
  x = checks.as_float(name, arg, x)
  checks.shape(name, arg, x, tuple(shape))
  return x.astype(like.dtype)


def at_least_rank(name: str, arg: str, x: jax.Array, rank: int) -> None:
  if x.ndim < rank:
    raise ValueError(
      f"{name}: argument `{arg}` must have rank >= {rank}, got "
      f"shape {tuple(x.shape)}."
    )


def token_mask(name: str, arg: str, mask, shape) -> jax.Array:
  """A token mask of ``shape``: boolean, or integer 0/1 (Hugging Face's
  attention-mask convention); ``None`` means every token."""
  if mask is None:
    return jnp.ones(tuple(shape), bool)
  mask = jnp.asarray(mask)
  if jnp.issubdtype(mask.dtype, jnp.integer):
    mask = mask != 0
  elif mask.dtype != jnp.bool_:
    raise TypeError(
      f"{name}: argument `{arg}` must be a boolean or integer "
      f"mask, got dtype {mask.dtype} with shape {mask.shape}."
    )
  checks.shape(name, arg, mask, tuple(shape))
  return mask


def masked_mean(
  values: jax.Array, mask: jax.Array
) -> tuple[jax.Array, jax.Array]:
  """``(mean of values over the last axis where mask, token count)``; the
  mean is 0 (gradient 0) where no token is active. Padded entries never reach
  the result, whatever they hold."""
  count = jnp.sum(mask, axis=-1).astype(values.dtype)
  total = jnp.sum(jnp.where(mask, values, 0), axis=-1)
  return numerics.safe_divide(total, count), count
