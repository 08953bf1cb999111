"""Per-token inputs of the preference losses: masked means
(used by :mod:`jaxloss.preference.pairwise` and
:mod:`jaxloss.preference.policy`)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxloss._core import numerics


def masked_mean(
  values: jax.Array, mask: jax.Array
) -> tuple[jax.Array, jax.Array]:
  """``(mean of values over the last axis where mask, token count)``; the
  mean is 0 (gradient 0) where no token is active. Padded entries never reach
  the result, whatever they hold."""
  count = jnp.sum(mask, axis=-1).astype(values.dtype)
  return numerics.masked_mean(values, mask), count
