"""Per-token inputs of the preference losses: token masks and masked means
(used by :mod:`jaxloss.preference.pairwise` and
:mod:`jaxloss.preference.policy`)."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss._core import checks, numerics


def token_mask(
  arg: str, mask: ArrayLike | None, shape: Sequence[int]
) -> jax.Array:
  """A token mask of ``shape``: boolean, or integer 0/1 (Hugging Face's
  attention-mask convention); ``None`` means every token."""
  if mask is None:
    return jnp.ones(tuple(shape), bool)
  mask = jnp.asarray(mask)
  if jnp.issubdtype(mask.dtype, jnp.integer):
    mask = mask != 0
  elif mask.dtype != jnp.bool_:
    raise checks.fail(
      f"argument `{arg}` must be a boolean or integer mask, got dtype "
      f"{mask.dtype} with shape {mask.shape}.",
      TypeError,
    )
  checks.shape(arg, mask, tuple(shape))
  return mask


def masked_mean(
  values: jax.Array, mask: jax.Array
) -> tuple[jax.Array, jax.Array]:
  """``(mean of values over the last axis where mask, token count)``; the
  mean is 0 (gradient 0) where no token is active. Padded entries never reach
  the result, whatever they hold."""
  count = jnp.sum(mask, axis=-1).astype(values.dtype)
  return numerics.masked_mean(values, mask), count
