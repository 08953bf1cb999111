"""What the policy losses of :mod:`jaxloss.rl` and :mod:`jaxloss.preference`
share: bounded probability ratios, PPO's clipped surrogate, and the reading of
inputs that are data (rewards, advantages, old log-probabilities).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxloss._core import checks


def bounded_exp(x: jax.Array) -> jax.Array:
  """``exp(min(x, log(max) / 2))``: equal to ``exp(x)`` up to about 1.8e19 in
  float32 (1e154 in float64), and finite (gradient 0) beyond, so that a ratio
  times an advantage never overflows to ``inf`` (and ``0 * inf`` never gives a
  NaN gradient)."""
  bound = 0.5 * float(np.log(jnp.finfo(x.dtype).max))
  return jnp.exp(jnp.minimum(x, bound))


def clipped_surrogate(
  log_ratio: jax.Array,
  advantages: jax.Array,
  eps_low: ArrayLike,
  eps_high: ArrayLike,
) -> jax.Array:
  """``-min(r A, clip(r, 1 - eps_low, 1 + eps_high) A)``, ``r = exp(log_ratio)``
  (bounded by :func:`bounded_exp`)."""
  ratio = bounded_exp(log_ratio)
  clipped = jnp.clip(ratio, 1 - eps_low, 1 + eps_high)
  return -jnp.minimum(ratio * advantages, clipped * advantages)


def data(
  arg: str, x: ArrayLike, like: jax.Array, shape: Sequence[int]
) -> jax.Array:
  """A numeric input that is data, not differentiated by the loss (rewards,
  discounts, advantages, returns): cast to ``like``'s dtype, shape checked."""
  x = checks.as_targets(arg, x, like)
  checks.shape(arg, x, tuple(shape))
  return x
