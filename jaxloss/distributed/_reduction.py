"""The reduction of a sharded loss over the global batch."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss._core import ring
from jaxloss._core.reduction import Reduction, reduce
from jaxloss._core.ring import AxisName


def global_reduce(
  values: jax.Array,
  reduction: Reduction,
  where: ArrayLike | None,
  weights: ArrayLike | None,
  axis_name: AxisName,
) -> jax.Array:
  """:func:`jaxloss.reduce` over the global batch, whose slices the devices
  along ``axis_name`` hold (``"none"``: this device's values)."""
  local = functools.partial(reduce, weights=weights, where=where)
  if reduction == "none":
    return local(values, "none")
  total = jax.lax.psum(local(values, "sum"), axis_name)
  if reduction == "sum":
    return total
  if reduction == "batchmean":
    return total / (values.shape[0] * ring.axis_size(axis_name))
  count = jax.lax.psum(local(jnp.ones_like(values), "sum"), axis_name)
  return total / jnp.where(count == 0, jnp.ones_like(count), count)
